"""Cost of one call in USD: `[pricing]` overrides first, then the genai-prices table.

An unknown model has no cost (None), never a guess from a similar name: only a match
made by genai-prices itself counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["CallCost", "ModelPrice", "Pricer"]

PriceTable = Literal["genai-prices", "none"]


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens."""

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None  # None: cached input at the input price


@dataclass(frozen=True, slots=True)
class CallCost:
    input_usd: float  # uncached input tokens
    output_usd: float
    cached_usd: float  # cached input tokens
    total_usd: float


def cost_from_price(
    price: ModelPrice, input_tokens: int, output_tokens: int, cached_tokens: int
) -> CallCost:
    """`input_tokens` includes the cached ones, as the OpenAI usage object counts them."""
    cached = min(max(cached_tokens, 0), input_tokens)
    cached_rate = (
        price.input_per_mtok if price.cached_input_per_mtok is None else price.cached_input_per_mtok
    )
    input_usd = (input_tokens - cached) * price.input_per_mtok / 1e6
    cached_usd = cached * cached_rate / 1e6
    output_usd = output_tokens * price.output_per_mtok / 1e6
    return CallCost(input_usd, output_usd, cached_usd, input_usd + cached_usd + output_usd)


class Pricer:
    """Prices finished calls; genai-prices is imported on the first lookup, not before."""

    def __init__(
        self, overrides: Mapping[str, ModelPrice] | None = None, table: PriceTable = "genai-prices"
    ) -> None:
        self._overrides = dict(overrides or {})
        self._table = table
        self._calc: Any = None  # genai_prices.calc_price once imported, False if absent

    def cost(
        self,
        model: str,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_tokens: int | None,
    ) -> CallCost | None:
        if input_tokens is None and output_tokens is None:
            return None
        inputs, outputs, cached = input_tokens or 0, output_tokens or 0, cached_tokens or 0
        override = self._overrides.get(model)
        if override is not None:
            return cost_from_price(override, inputs, outputs, cached)
        if self._table == "none":
            return None
        return self._from_table(model, inputs, outputs, min(cached, inputs))

    def _from_table(self, model: str, inputs: int, outputs: int, cached: int) -> CallCost | None:
        if self._calc is None:
            try:
                from genai_prices import Usage, calc_price
            except ImportError:
                self._calc = False
            else:
                self._calc = (Usage, calc_price)
        if self._calc is False:
            return None
        usage_type, calc_price = self._calc
        try:
            total = calc_price(
                usage_type(input_tokens=inputs, output_tokens=outputs, cache_read_tokens=cached),
                model,
            )
            uncached = calc_price(usage_type(input_tokens=inputs - cached, output_tokens=0), model)
        except LookupError:
            return None
        input_usd = float(uncached.input_price)
        all_input = float(total.input_price)
        output_usd = float(total.output_price)
        return CallCost(input_usd, output_usd, all_input - input_usd, all_input + output_usd)
