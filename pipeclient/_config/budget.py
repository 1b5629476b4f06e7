"""`[budget]`: a spend limit per UTC day or month, for the client or for each user."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BudgetConfig"]


class BudgetConfig(BaseModel):
    """A spend limit on priced calls, kept in a local ledger shared by every process."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    limit_usd: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="USD per period; unset: no budget",
        json_schema_extra={"example": "limit_usd = 50.0"},
    )
    period: Literal["day", "month"] = Field(
        "month", description='"day" or "month": calendar periods in UTC'
    )
    scope: Literal["client", "user"] = Field(
        "client", description='"client": one total; "user": one total per user_id'
    )
    action: Literal["refuse", "warn"] = Field(
        "refuse",
        description='"refuse": raise BudgetExceededError before sending; "warn": log once',
    )
    path: str = Field(".pipelex/budget.db", min_length=1, description="the SQLite ledger file")

    @property
    def enabled(self) -> bool:
        return self.limit_usd is not None
