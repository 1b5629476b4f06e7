"""Cost per call: overrides are exact arithmetic; the genai-prices table never guesses."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeclient._telemetry.pricing import ModelPrice, Pricer

rates = st.floats(min_value=0, max_value=1000, allow_nan=False)
tokens = st.integers(min_value=0, max_value=10_000_000)


@given(rates, rates, rates, tokens, tokens, tokens)
def test_override_cost_is_tokens_times_price(
    inp: float, out: float, cached_rate: float, n_in: int, n_out: int, n_cached: int
) -> None:
    n_cached = min(n_cached, n_in)
    pricer = Pricer({"m": ModelPrice(inp, out, cached_rate)}, table="none")
    cost = pricer.cost("m", n_in, n_out, n_cached)
    assert cost is not None
    assert cost.input_usd == pytest.approx((n_in - n_cached) * inp / 1e6)
    assert cost.cached_usd == pytest.approx(n_cached * cached_rate / 1e6)
    assert cost.output_usd == pytest.approx(n_out * out / 1e6)
    assert cost.total_usd == pytest.approx(cost.input_usd + cost.cached_usd + cost.output_usd)


def test_unknown_model_has_no_cost() -> None:
    assert Pricer().cost("no-such-model-xyz", 100, 10, 0) is None
    assert Pricer(table="none").cost("gpt-4o", 100, 10, 0) is None
    assert Pricer().cost("gpt-4o", None, None, None) is None


def test_override_wins_over_table() -> None:
    cost = Pricer({"gpt-4o": ModelPrice(1.0, 2.0)}).cost("gpt-4o", 1_000_000, 1_000_000, 0)
    assert cost is not None and cost.total_usd == pytest.approx(3.0)


def test_genai_prices_table_splits_cached_input() -> None:
    pytest.importorskip("genai_prices")
    cost = Pricer().cost("gpt-4o", 1000, 200, 400)
    assert cost is not None
    # gpt-4o in the table: $2.5 input, $1.25 cached input, $10 output per million tokens
    assert cost.input_usd == pytest.approx(600 * 2.5 / 1e6)
    assert cost.cached_usd == pytest.approx(400 * 1.25 / 1e6)
    assert cost.output_usd == pytest.approx(200 * 10 / 1e6)
    assert cost.total_usd == pytest.approx(cost.input_usd + cost.cached_usd + cost.output_usd)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="genai-prices needs Python 3.11+")
@settings(max_examples=60, deadline=None)
@given(
    inputs=st.integers(0, 150_000),
    outputs=st.integers(0, 50_000),
    share=st.floats(0, 1),
)
def test_remembered_table_rates_give_the_tables_own_numbers(
    inputs: int, outputs: int, share: float
) -> None:
    from genai_prices import Usage, calc_price

    cached = int(inputs * share)
    pricer = Pricer(table="genai-prices")
    first = pricer.cost("gpt-4o", 1000, 100, 500)  # looked up, then remembered
    assert first is not None
    assert pricer._rates.get("gpt-4o") is not None  # flat rates: no more lookups
    got = pricer.cost("gpt-4o", inputs, outputs, cached)  # from the remembered rates
    total = calc_price(
        Usage(input_tokens=inputs, output_tokens=outputs, cache_read_tokens=cached), "gpt-4o"
    )
    assert got is not None
    assert got.total_usd == pytest.approx(float(total.total_price), rel=1e-9, abs=1e-12)
    assert got.output_usd == pytest.approx(float(total.output_price), rel=1e-9, abs=1e-12)
