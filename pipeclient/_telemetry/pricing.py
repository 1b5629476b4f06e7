"""Cost of one call in USD: `[pricing]` overrides first, then the genai-prices table.

An unknown model has no cost (None), never a guess from a similar name: only a match
made by genai-prices itself counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
        self,
        overrides: Mapping[str, ModelPrice] | None = None,
        table: PriceTable = "genai-prices",
        *,
        local_backends: Iterable[str] = (),
    ) -> None:
        self._overrides = dict(overrides or {})
        self._table = table
        # Your own servers bill no one per token: a table's price for a model of the same
        # name (an API's) would be a wrong number. Only an override prices their calls.
        self._local = frozenset(local_backends)
        self._calc: Any = None  # genai_prices.calc_price once imported, False if absent
        # The table's flat rates per model, once a lookup proved our arithmetic gives the
        # table's own numbers (None: the table does not know the model). A lookup costs
        # ~100 us on the export worker; the arithmetic ~2 us.
        self._rates: dict[str, ModelPrice | None] = {}

    def cost(
        self,
        model: str,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_tokens: int | None,
        backend: str | None = None,
        audio: tuple[int, int] = (0, 0),
    ) -> CallCost | None:
        """The call's cost; `audio`: of its input and output tokens, the audio ones."""
        if input_tokens is None and output_tokens is None:
            return None
        inputs, outputs, cached = input_tokens or 0, output_tokens or 0, cached_tokens or 0
        override = self._overrides.get(model)
        if override is not None:  # your price, for every kind of token
            return cost_from_price(override, inputs, outputs, cached)
        if self._table == "none" or backend in self._local:
            return None
        cached = min(cached, inputs)
        if any(audio):  # audio has its own rates: the table's, never the text rate
            return self._from_table(model, inputs, outputs, cached, audio)
        if model in self._rates:
            rates = self._rates[model]
            return None if rates is None else cost_from_price(rates, inputs, outputs, cached)
        return self._from_table(model, inputs, outputs, cached)

    def input_rate(self, model: str) -> float | None:
        """USD per input token when known without a table lookup (an override, or the
        flat rates remembered after the model's first priced call); else None. Cheap
        enough for the caller's thread: a budget's estimate of a call's input cost."""
        price = self._overrides.get(model) or self._rates.get(model)
        return None if price is None else price.input_per_mtok / 1e6

    def _from_table(
        self, model: str, inputs: int, outputs: int, cached: int, audio: tuple[int, int] = (0, 0)
    ) -> CallCost | None:
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
        audio_in, audio_out = min(audio[0], inputs - cached), min(audio[1], outputs)
        heard = {"input_audio_tokens": audio_in} if audio_in else {}
        said = {"output_audio_tokens": audio_out} if audio_out else {}
        try:
            total = calc_price(
                usage_type(
                    input_tokens=inputs,
                    output_tokens=outputs,
                    cache_read_tokens=cached,
                    **heard,
                    **said,
                ),
                model,
            )
            uncached = calc_price(
                usage_type(input_tokens=inputs - cached, output_tokens=0, **heard), model
            )
        except LookupError:
            if not any(audio):
                self._remember(model, None)
            return None
        input_usd = float(uncached.input_price)
        all_input = float(total.input_price)
        output_usd = float(total.output_price)
        found = CallCost(input_usd, output_usd, all_input - input_usd, all_input + output_usd)
        rates = None if any(audio) else _flat_rates(total)
        if rates is not None and _same_cost(cost_from_price(rates, inputs, outputs, cached), found):
            self._remember(model, rates)
        return found

    def _remember(self, model: str, rates: ModelPrice | None) -> None:
        if len(self._rates) < _MAX_REMEMBERED:
            self._rates[model] = rates


_MAX_REMEMBERED = 1024
_FLAT_KEYS = frozenset({"input_mtok", "output_mtok", "cache_read_mtok"})


def _flat_rates(calculation: Any) -> ModelPrice | None:
    """The model's rates when they are one flat price per token kind: no tiers, no
    time-of-day or context variants, nothing priced per request; else None (look up each call)."""
    from decimal import Decimal

    model = getattr(calculation, "model", None)
    price = getattr(calculation, "model_price", None)
    if model is None or price is None or getattr(model, "prices", None) is not price:
        return None
    # Units this pricer never passes (web searches, ...) cost nothing; a price per request
    # would apply to every call, so it is not flat.
    given = {
        key: value
        for key, value in vars(price).items()
        if value is not None and (key == "requests_kcount" or not key.endswith("_kcount"))
    }
    if not set(given) <= _FLAT_KEYS or not all(isinstance(v, Decimal) for v in given.values()):
        return None
    cached = given.get("cache_read_mtok")
    return ModelPrice(
        float(given.get("input_mtok", 0)),
        float(given.get("output_mtok", 0)),
        None if cached is None else float(cached),
    )


def _same_cost(ours: CallCost, table: CallCost) -> bool:
    return all(
        abs(a - b) <= 1e-12 + 1e-9 * abs(b)
        for a, b in zip(
            (ours.input_usd, ours.output_usd, ours.cached_usd),
            (table.input_usd, table.output_usd, table.cached_usd),
            strict=True,
        )
    )
