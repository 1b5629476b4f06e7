"""`[cache]`: an opt-in, exact-match cache of non-streamed answers, in a local file."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CacheConfig"]


class CacheConfig(BaseModel):
    """The response cache: the same request answered again from a local file, at no cost."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    enabled: bool = Field(
        False, description="answer a repeated non-streamed request from the local cache"
    )
    ttl_seconds: int = Field(
        3600, gt=0, le=315_360_000, description="how long an answer is served, in seconds"
    )
    path: str = Field(".pipelex/cache.db", min_length=1, description="the SQLite cache file")
    key: str = Field(
        "${PIPECLIENT_CACHE_KEY}",
        description="32 random bytes as base64 sealing the answers; unset: a key derived "
        "from [store] key when the store is on, else answers are kept unencrypted",
        repr=False,
        json_schema_extra={"secret": True},
    )
    max_entries: int = Field(
        10000, gt=0, le=100_000_000, description="answers kept at most; the least used go first"
    )

    @property
    def has_key(self) -> bool:
        """A key is set: not empty, and not a placeholder whose variable is unset."""
        return bool(self.key.strip()) and "${" not in self.key
