"""Spend limits: `[budget]` refuses a call over the limit before any network I/O, with
the refusal record as its only telemetry; totals live in one SQLite ledger shared by
threads and processes (real files, a real loopback backend, a real PostHog capture)."""

from __future__ import annotations

import calendar
import json
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeclient
from pipeclient._config.budget import BudgetConfig
from pipeclient._telemetry.budget import Budget
from pipeclient._telemetry.ledger import CLIENT_SCOPE, NANO, Ledger, period_start, user_scope
from pipeclient.testing import CaptureServer, MockBackend

from .conftest import RunCli, wait_until

HI = [{"role": "user", "content": "hello there"}]
# Input almost free (the estimate of a call's input stays tiny), output what costs.
PRICES = {
    "table": "none",
    "models": {"m": {"input_per_mtok": 1.0, "output_per_mtok": 1000.0}},
}


@pytest.fixture
def server() -> Iterator[Any]:
    mock = MockBackend()
    with mock.serve() as served:
        served.mock = mock
        yield served


@pytest.fixture
def posthog() -> Iterator[CaptureServer]:
    with CaptureServer() as capture:
        yield capture


def telemetry(ledger: Path, **budget: Any) -> dict[str, Any]:
    return {"budget": {"path": str(ledger), **budget}, "pricing": PRICES}


def call_cost(server: Any, tmp_path: Path) -> int:
    """What one HI call to model "m" costs, in nano-USD, as the ledger records it."""
    path = tmp_path / "probe.db"
    with pipeclient.Client(
        backends=[server.backend()], telemetry=telemetry(path, limit_usd=1000.0)
    ) as client:
        client.chat.completions.create(model="m", messages=HI)
        client.flush()
        assert client._budget is not None
        cost = client._budget.spent().nano_usd
    server.mock.reset()
    assert cost > 0
    return cost


def spend(path: Path, nano_usd: int, user_id: str | None = None, at: float | None = None) -> None:
    """Spend recorded by some other process sharing the ledger."""
    import time

    config = BudgetConfig(limit_usd=1.0, scope="user" if user_id is not None else "client")
    budget = Budget(config, Ledger(path))
    budget.record([(time.time() if at is None else at, user_id, nano_usd / NANO)])
    budget.ledger.close()


# -- refusal -----------------------------------------------------------------------------


def test_a_call_over_the_limit_is_refused_before_any_network_io(
    server: Any, posthog: CaptureServer, tmp_path: Path
) -> None:
    ledger = tmp_path / "budget.db"
    spend(ledger, 5 * NANO)  # 5 USD already spent this month, by another process
    config = {
        **telemetry(ledger, limit_usd=5.0),
        "posthog": {"enabled": True, "host": posthog.url, "api_key": "phc_test"},
    }
    with pipeclient.Client(backends=[server.backend()], telemetry=config) as client:
        with pytest.raises(pipeclient.BudgetExceededError) as caught:
            client.chat.completions.create(model="m", messages=HI)
        with pytest.raises(pipeclient.BudgetExceededError):  # streamed: the same
            client.chat.completions.create(model="m", messages=HI, stream=True)
        client.flush()
    assert server.mock.requests == [] and server.connections == 0
    error = caught.value
    assert isinstance(error, pipeclient.PipeclientError)
    assert (error.limit_usd, error.spent_usd, error.period, error.scope) == (
        5.0,
        5.0,
        "month",
        "client",
    )
    message = str(error)
    assert "5.00 USD per month" in message and "5.00 USD spent" in message
    assert "limit_usd" in message and "PIPECLIENT_BUDGET__LIMIT_USD" in message
    assert error.period_start in message and error.request_id in message
    # The refusal records are the only telemetry: an error event each, no cost, no tokens.
    events = [event for request in posthog.requests for event in request.json()["batch"]]
    assert len(events) == 2
    for event in events:
        props = event["properties"]
        assert props["$ai_is_error"] is True
        assert props["$ai_error"].startswith("BudgetExceededError")
        assert not any("cost" in key or "tokens" in key for key in props)
    assert all(event["event"] == "$ai_generation" for event in events)


def test_spend_reaches_the_limit_then_calls_are_refused(server: Any, tmp_path: Path) -> None:
    cost = call_cost(server, tmp_path)
    limit = 3 * cost / NANO
    ledger = tmp_path / "budget.db"
    with pipeclient.Client(
        backends=[server.backend()], telemetry=telemetry(ledger, limit_usd=limit)
    ) as client:
        sent = 0
        with pytest.raises(pipeclient.BudgetExceededError) as caught:
            for _ in range(10):
                client.chat.completions.create(model="m", messages=HI)
                client.flush()  # the cost is in the ledger before the next check
                sent += 1
    # The third call's input estimate would pass the limit by a hair; never more than 3.
    assert sent in (2, 3) and len(server.mock.requests) == sent
    assert caught.value.spent_usd == pytest.approx(sent * cost / NANO)
    assert Ledger(ledger).totals(period_start(_now(), "month"), CLIENT_SCOPE).calls == sent


def test_the_estimate_of_the_calls_input_refuses_a_call_that_would_pass_the_limit(
    server: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "budget.db"
    prices = {"table": "none", "models": {"m": {"input_per_mtok": 1e6, "output_per_mtok": 0}}}
    config = {"budget": {"path": str(ledger), "limit_usd": 1.0}, "pricing": prices}
    with pipeclient.Client(backends=[server.backend()], telemetry=config) as client:
        with pytest.raises(pipeclient.BudgetExceededError) as caught:  # 1 USD per token
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert caught.value.spent_usd == 0.0 and caught.value.estimate_usd > 1.0
    assert "would be passed" in str(caught.value) and "estimated" in str(caught.value)
    assert server.mock.requests == []


def test_async_client_is_refused_before_any_network_io(server: Any, tmp_path: Path) -> None:
    import anyio

    ledger = tmp_path / "budget.db"
    spend(ledger, 2 * NANO)

    async def main() -> None:
        async with pipeclient.AsyncClient(
            backends=[server.backend()], telemetry=telemetry(ledger, limit_usd=2.0)
        ) as client:
            with pytest.raises(pipeclient.BudgetExceededError):
                await client.chat.completions.create(model="m", messages=HI)
            models = await client.models.list()  # listing models costs nothing
            assert models.data

    anyio.run(main)
    assert [request.path for request in server.mock.requests] == ["/v1/models"]


def test_async_client_records_its_spend(server: Any, tmp_path: Path) -> None:
    import anyio

    cost = call_cost(server, tmp_path)
    ledger = tmp_path / "budget.db"

    async def main() -> None:
        async with pipeclient.AsyncClient(
            backends=[server.backend()], telemetry=telemetry(ledger, limit_usd=100.0)
        ) as client:
            for _ in range(3):
                await client.chat.completions.create(model="m", messages=HI)

    anyio.run(main)
    totals = Ledger(ledger).totals(period_start(_now(), "month"), CLIENT_SCOPE)
    assert totals.nano_usd == 3 * cost and totals.calls == 3


def test_no_log_calls_count_against_the_budget(server: Any, tmp_path: Path) -> None:
    cost = call_cost(server, tmp_path)
    ledger = tmp_path / "budget.db"
    with pipeclient.Client(
        backends=[server.backend()], telemetry=telemetry(ledger, limit_usd=100.0), no_log=True
    ) as client:
        client.chat.completions.create(model="m", messages=HI)
    assert Ledger(ledger).totals(period_start(_now(), "month"), CLIENT_SCOPE).nano_usd == cost


def test_the_budget_holds_under_do_not_track(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    ledger = tmp_path / "budget.db"
    spend(ledger, NANO)
    with pipeclient.Client(
        backends=[server.backend()], telemetry=telemetry(ledger, limit_usd=1.0)
    ) as client:
        with pytest.raises(pipeclient.BudgetExceededError):
            client.chat.completions.create(model="m", messages=HI)
    assert server.mock.requests == []


# -- warn --------------------------------------------------------------------------------


def test_warn_lets_calls_go_and_logs_once_per_period(
    server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = tmp_path / "budget.db"
    spend(ledger, NANO)
    caplog.set_level(logging.WARNING, logger="pipeclient")
    with pipeclient.Client(
        backends=[server.backend()], telemetry=telemetry(ledger, limit_usd=1.0, action="warn")
    ) as client:
        for _ in range(4):
            client.chat.completions.create(model="m", messages=HI)
        assert client._budget is not None
        warnings = [r for r in caplog.records if "spend limit" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].name == "pipeclient"
        assert 'action = "warn"' in warnings[0].getMessage()
        # Next month the ledger row is another: a new crossing, a new warning.
        real = client._budget.clock
        client._budget.clock = lambda: real() + 32 * 86400
        spend(ledger, NANO, at=real() + 32 * 86400)
        client.chat.completions.create(model="m", messages=HI)
        client.chat.completions.create(model="m", messages=HI)
    assert len(server.mock.requests) == 6
    assert len([r for r in caplog.records if "spend limit" in r.getMessage()]) == 2


# -- periods -----------------------------------------------------------------------------


def test_periods_are_utc_calendar_days_and_months() -> None:
    last = calendar.timegm((2026, 12, 31, 23, 59, 59))
    assert period_start(last, "day") == "2026-12-31" and period_start(last, "month") == "2026-12"
    assert period_start(last + 1, "day") == "2027-01-01"
    assert period_start(last + 1, "month") == "2027-01"


@pytest.mark.parametrize("period", ["day", "month"])
def test_a_new_period_starts_from_zero(tmp_path: Path, period: str) -> None:
    clock = [calendar.timegm((2026, 12, 31, 12, 0, 0))]
    config = BudgetConfig(limit_usd=1.0, period=period)
    budget = Budget(config, Ledger(tmp_path / "budget.db"), clock=lambda: clock[0])
    budget.record([(clock[0], None, 1.5)])
    refusal = budget.check(request_id="r", model="m", user_id=None, input_bytes=0)
    assert (
        refusal is not None and refusal.period_start == ("2026-12-31", "2026-12")[period == "month"]
    )
    clock[0] = calendar.timegm((2027, 1, 1, 0, 0, 0))  # midnight UTC, new year
    assert budget.check(request_id="r", model="m", user_id=None, input_bytes=0) is None
    assert budget.spent().calls == 0


def test_the_client_is_refused_this_month_and_served_the_next(server: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "budget.db"
    spend(ledger, 2 * NANO)
    with pipeclient.Client(
        backends=[server.backend()], telemetry=telemetry(ledger, limit_usd=2.0)
    ) as client:
        with pytest.raises(pipeclient.BudgetExceededError):
            client.chat.completions.create(model="m", messages=HI)
        assert client._budget is not None
        real = client._budget.clock
        client._budget.clock = lambda: real() + 32 * 86400
        client.chat.completions.create(model="m", messages=HI)
    assert len(server.mock.requests) == 1


# -- scope = "user" ----------------------------------------------------------------------


def test_each_user_has_their_own_total(server: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "budget.db"
    spend(ledger, 3 * NANO, user_id="alice")
    config = telemetry(ledger, limit_usd=3.0, scope="user")
    with pipeclient.Client(backends=[server.backend()], telemetry=config) as client:
        with pytest.raises(pipeclient.BudgetExceededError) as caught:
            client.chat.completions.create(model="m", messages=HI, user_id="alice")
        client.chat.completions.create(model="m", messages=HI, user_id="bob")
        with client.trace("block", user_id="alice"), pytest.raises(pipeclient.BudgetExceededError):
            client.chat.completions.create(model="m", messages=HI)
        client.chat.completions.create(model="m", messages=HI)  # no user_id: its own total
    with pipeclient.Client(
        backends=[server.backend()], telemetry=config, user_id="alice"
    ) as alices:
        with pytest.raises(pipeclient.BudgetExceededError):
            alices.chat.completions.create(model="m", messages=HI)
    assert caught.value.scope == "user" and "alice" not in str(caught.value)
    assert "for this user_id" in str(caught.value)
    assert len(server.mock.requests) == 2
    month = period_start(_now(), "month")
    rows = dict(Ledger(ledger).rows(month))
    assert rows[user_scope("alice")].nano_usd == 3 * NANO
    assert rows[user_scope("bob")].calls == 1 and rows[user_scope(None)].calls == 1
    assert rows[CLIENT_SCOPE].calls == 3


def test_client_scope_keeps_no_user_ids(server: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "budget.db"
    with pipeclient.Client(
        backends=[server.backend()], telemetry=telemetry(ledger, limit_usd=10.0)
    ) as client:
        client.chat.completions.create(model="m", messages=HI, user_id="alice@example.com")
    assert [scope for scope, _ in Ledger(ledger).rows(period_start(_now(), "month"))] == [
        CLIENT_SCOPE
    ]
    files = list(tmp_path.glob("budget.db*"))
    assert b"alice" not in b"".join(path.read_bytes() for path in files)
    assert files and all(path.stat().st_mode & 0o077 == 0 for path in files)  # the owner's


def test_calls_without_a_user_id_share_a_total_of_their_own(tmp_path: Path) -> None:
    budget = Budget(BudgetConfig(limit_usd=1.0, scope="user"), Ledger(tmp_path / "b.db"))
    budget.record([(_now(), None, 1.0), (_now(), "carol", 0.5)])
    refusal = budget.check(request_id="r", model="m", user_id=None, input_bytes=0)
    assert refusal is not None and "for calls without a user_id" in str(refusal)
    assert budget.check(request_id="r", model="m", user_id="carol", input_bytes=0) is None


def test_a_forked_child_records_into_the_same_ledger(server: Any, tmp_path: Path) -> None:
    import os

    from .conftest import wait_child

    cost = call_cost(server, tmp_path)
    ledger = tmp_path / "budget.db"
    with pipeclient.Client(
        backends=[server.backend()], telemetry=telemetry(ledger, limit_usd=2 * cost / NANO)
    ) as client:
        client.chat.completions.create(model="m", messages=HI)
        client.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                client.chat.completions.create(model="m", messages=HI)
                report = client.flush()
                code = 0 if report is not None and report.complete else 3
            finally:
                os._exit(code)
        assert wait_child(pid, 60) == 0
        with pytest.raises(pipeclient.BudgetExceededError):  # the child's spend counts here
            client.chat.completions.create(model="m", messages=HI)
    totals = Ledger(ledger).totals(period_start(_now(), "month"), CLIENT_SCOPE)
    assert totals.calls == 2 and totals.nano_usd == 2 * cost


# -- unpriced ----------------------------------------------------------------------------


def test_an_unpriced_model_is_counted_never_given_a_cost(
    server: Any, tmp_path: Path, cli: RunCli
) -> None:
    ledger = tmp_path / "budget.db"
    with pipeclient.Client(
        backends=[server.backend()], telemetry=telemetry(ledger, limit_usd=0.01)
    ) as client:
        for _ in range(3):
            client.chat.completions.create(model="nobody-prices-me", messages=HI)
        client.chat.completions.create(model="m", messages=HI)
    totals = Ledger(ledger).totals(period_start(_now(), "month"), CLIENT_SCOPE)
    assert totals.calls == 4 and totals.unpriced == 3
    toml = tmp_path / "telemetry.toml"
    toml.write_text(f'[budget]\nlimit_usd = 0.01\npath = "{ledger}"\n')
    result = cli("budget", "status", "--file", str(toml), "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert (status["calls"], status["unpriced_calls"]) == (4, 3)
    assert "3 unpriced" in cli("budget", "status", "--file", str(toml)).stdout


# -- threads and processes ---------------------------------------------------------------


def test_many_threads_add_up_exactly(server: Any, tmp_path: Path) -> None:
    cost = call_cost(server, tmp_path)
    ledger = tmp_path / "budget.db"
    threads, each = 12, 15
    with pipeclient.Client(
        backends=[server.backend()], telemetry=telemetry(ledger, limit_usd=1000.0)
    ) as client:

        def work() -> None:
            for _ in range(each):
                client.chat.completions.create(model="m", messages=HI)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    totals = Ledger(ledger).totals(period_start(_now(), "month"), CLIENT_SCOPE)
    assert totals.calls == threads * each and totals.nano_usd == threads * each * cost


def test_many_threads_stop_at_the_limit_within_the_calls_in_flight(
    server: Any, tmp_path: Path
) -> None:
    cost = call_cost(server, tmp_path)
    ledger = tmp_path / "budget.db"
    threads, limit_calls = 8, 20
    sent: list[int] = []
    with pipeclient.Client(
        backends=[server.backend()],
        telemetry=telemetry(ledger, limit_usd=limit_calls * cost / NANO),
    ) as client:

        def work() -> None:
            done = 0
            try:
                for _ in range(100):
                    client.chat.completions.create(model="m", messages=HI)
                    client.flush()
                    done += 1
            except pipeclient.BudgetExceededError:
                pass
            sent.append(done)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert len(sent) == threads  # every thread was stopped by the budget
    total = sum(sent)
    assert limit_calls - 1 <= total <= limit_calls + threads
    totals = Ledger(ledger).totals(period_start(_now(), "month"), CLIENT_SCOPE)
    assert totals.calls == total and totals.nano_usd == total * cost


_WORKER = textwrap.dedent(
    """
    import json, sys
    import pipeclient
    from pipeclient.testing import MockBackend

    ledger, limit, calls = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    telemetry = {"budget": {"path": ledger, "limit_usd": limit}, "pricing": json.loads(sys.argv[4])}
    sent = refused = 0
    with pipeclient.Client(backends=[MockBackend().backend()], telemetry=telemetry) as client:
        for _ in range(calls):
            try:
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hello there"}]
                )
                client.flush()
                sent += 1
            except pipeclient.BudgetExceededError:
                refused += 1
    print(json.dumps({"sent": sent, "refused": refused}))
    """
)


def _run_workers(ledger: Path, limit: float, calls: int, count: int = 2) -> list[dict[str, int]]:
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                str(ledger),
                str(limit),
                str(calls),
                json.dumps(PRICES),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append(json.loads(out))
    return results


def test_processes_share_one_ledger_exactly(tmp_path: Path) -> None:
    ledger = tmp_path / "budget.db"
    cost = _mock_cost()
    results = _run_workers(ledger, 1000.0, 40)
    assert [r["sent"] for r in results] == [40, 40]
    totals = Ledger(ledger).totals(period_start(_now(), "month"), CLIENT_SCOPE)
    assert totals.calls == 80 and totals.nano_usd == 80 * cost


def test_processes_are_held_to_one_limit(tmp_path: Path) -> None:
    ledger = tmp_path / "budget.db"
    cost = _mock_cost()
    limit_calls = 30
    results = _run_workers(ledger, limit_calls * cost / NANO, 40)
    total = sum(r["sent"] for r in results)
    # Together they stop at the limit: at most one call in flight per process beyond it.
    assert limit_calls - 1 <= total <= limit_calls + 2
    assert all(r["refused"] > 0 for r in results)
    totals = Ledger(ledger).totals(period_start(_now(), "month"), CLIENT_SCOPE)
    assert totals.calls == total and totals.nano_usd == total * cost


def _mock_cost() -> int:
    mock = MockBackend()
    with pipeclient.Client(backends=[mock.backend()]) as client:
        usage = client.chat.completions.create(model="m", messages=HI).usage
    assert usage is not None
    return round((usage.prompt_tokens * 1.0 + usage.completion_tokens * 1000.0) / 1e6 * NANO)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    calls=st.lists(
        st.tuples(
            st.sampled_from(["alice", "bob", None]),
            st.one_of(st.none(), st.floats(0, 50, allow_nan=False)),
            st.integers(0, 1),  # which of two connections records it
        ),
        max_size=40,
    ),
    batch=st.integers(1, 7),
)
def test_ledger_sums_equal_the_recorded_costs_under_any_interleaving(
    tmp_path: Path, calls: list[tuple[str | None, float | None, int]], batch: int
) -> None:
    import uuid

    path = tmp_path / f"{uuid.uuid4().hex}.db"
    config = BudgetConfig(limit_usd=1.0, scope="user")
    budgets = [Budget(config, Ledger(path)), Budget(config, Ledger(path))]
    now = _now()
    for start in range(0, len(calls), batch):
        chunk = calls[start : start + batch]
        for which in (0, 1):
            budgets[which].record([(now, user, cost) for user, cost, w in chunk if w == which])
    month = period_start(now, "month")
    rows = dict(budgets[0].ledger.rows(month))
    want_total = sum(round(cost * NANO) for _, cost, _ in calls if cost is not None)
    assert rows.get(CLIENT_SCOPE, _zero()).nano_usd == want_total
    assert rows.get(CLIENT_SCOPE, _zero()).calls == len(calls)
    for user in ("alice", "bob", None):
        mine = [cost for who, cost, _ in calls if who == user]
        got = rows.get(user_scope(user), _zero())
        assert got.nano_usd == sum(round(c * NANO) for c in mine if c is not None)
        assert got.unpriced == sum(c is None for c in mine)
    day = dict(budgets[1].ledger.rows(period_start(now, "day")))
    assert day.get(CLIENT_SCOPE, _zero()) == rows.get(CLIENT_SCOPE, _zero())
    for budget in budgets:
        budget.ledger.close()


def _zero() -> Any:
    from pipeclient._telemetry.ledger import Totals

    return Totals()


def _now() -> float:
    import time

    return time.time()


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "key", "words"),
    [
        ("limit_usd = -3", "budget.limit_usd", "greater than 0"),
        ("limit_usd = 0", "budget.limit_usd", "greater than 0"),
        ('limit_usd = "5"', "budget.limit_usd", "valid number"),
        ('period = "week"', "budget.period", "'day' or 'month'"),
        ('scope = "team"', "budget.scope", "'client' or 'user'"),
        ('action = "block"', "budget.action", "'refuse' or 'warn'"),
        ("limit = 5", "budget.limit", "did you mean 'limit_usd'"),
    ],
)
def test_bad_budget_config_names_the_file_and_key(
    tmp_path: Path, line: str, key: str, words: str, cli: RunCli
) -> None:
    toml = tmp_path / "telemetry.toml"
    toml.write_text(f"[budget]\n{line}\n")
    with pytest.raises(pipeclient.ConfigError) as caught:
        pipeclient.Client(backends=[MockBackend().backend()], telemetry_file=toml)
    assert caught.value.key == key and caught.value.source == str(toml)
    assert words in str(caught.value)
    result = cli("budget", "status", "--file", str(toml))
    assert result.returncode == 2 and key in result.stderr and str(toml) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_environment_variable_sets_the_limit_and_is_named_when_bad(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPECLIENT_BUDGET__LIMIT_USD", "-1")
    with pytest.raises(pipeclient.ConfigError) as caught:
        pipeclient.Client(backends=[server.backend()])
    assert caught.value.source == "environment variable PIPECLIENT_BUDGET__LIMIT_USD"
    monkeypatch.setenv("PIPECLIENT_BUDGET__LIMIT_USD", "1")
    monkeypatch.setenv("PIPECLIENT_BUDGET__PATH", str(tmp_path / "b.db"))
    spend(tmp_path / "b.db", NANO)
    with pipeclient.Client(backends=[server.backend()]) as client:
        with pytest.raises(pipeclient.BudgetExceededError) as refused:
            client.chat.completions.create(model="m", messages=HI)
    assert "environment variable PIPECLIENT_BUDGET__LIMIT_USD" in str(refused.value)


def test_a_ledger_path_that_is_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(pipeclient.ConfigError) as caught:
        pipeclient.Client(
            backends=[MockBackend().backend()],
            telemetry={"budget": {"limit_usd": 1.0, "path": str(tmp_path)}},
        )
    assert caught.value.key == "budget.path" and "directory" in str(caught.value)


def test_a_ledger_path_holding_another_database_is_refused(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(pipeclient.ConfigError) as caught:
        pipeclient.Client(
            backends=[MockBackend().backend()],
            telemetry={"budget": {"limit_usd": 1.0, "path": str(other)}},
        )
    assert caught.value.key == "budget.path" and "invoices" in str(caught.value)


def test_init_writes_the_budget_table_unset(tmp_path: Path, cli: RunCli) -> None:
    target = tmp_path / "telemetry.toml"
    assert cli("init", "telemetry", "--path", str(target)).returncode == 0
    text = target.read_text()
    assert "[budget]" in text and "# limit_usd = " in text and 'period = "month"' in text
    result = cli("budget", "status", "--file", str(target))
    assert result.returncode == 2 and "limit_usd" in result.stderr


# -- budget status -----------------------------------------------------------------------


def test_budget_status_shows_the_period_and_each_user(
    server: Any, tmp_path: Path, cli: RunCli
) -> None:
    cost = call_cost(server, tmp_path)
    ledger = tmp_path / "budget.db"
    toml = tmp_path / "telemetry.toml"
    toml.write_text(
        f'[budget]\nlimit_usd = 1.5\nperiod = "day"\nscope = "user"\npath = "{ledger}"\n'
        '[pricing]\ntable = "none"\n'
        'models."m" = { input_per_mtok = 1.0, output_per_mtok = 1000.0 }\n'
    )
    with pipeclient.Client(backends=[server.backend()], telemetry_file=toml) as client:
        client.chat.completions.create(model="m", messages=HI, user_id="alice")
        client.chat.completions.create(model="m", messages=HI, user_id="alice")
        client.chat.completions.create(model="m", messages=HI, user_id="bob")
    result = cli("budget", "status", "--file", str(toml), "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["period"] == "day" and status["period_start"] == period_start(_now(), "day")
    assert status["limit_usd"] == 1.5 and status["scope"] == "user"
    assert status["calls"] == 3 and status["spent_usd"] == pytest.approx(3 * cost / NANO)
    users = {user["user_id"]: user for user in status["users"]}
    assert users["alice"]["spent_usd"] == pytest.approx(2 * cost / NANO)
    assert users["alice"]["remaining_usd"] == pytest.approx(1.5 - 2 * cost / NANO)
    assert users["bob"]["calls"] == 1
    text = cli("budget", "status", "--file", str(toml)).stdout
    assert "1.50 USD per day (UTC)" in text and "alice: spent" in text and "bob: spent" in text
    assert str(ledger) in text


def test_budget_status_without_a_ledger_shows_nothing_spent(tmp_path: Path, cli: RunCli) -> None:
    ledger = tmp_path / "none-yet.db"
    toml = tmp_path / "telemetry.toml"
    toml.write_text(f'[budget]\nlimit_usd = 2\npath = "{ledger}"\n')
    result = cli("budget", "status", "--file", str(toml))
    assert result.returncode == 0
    assert "spent 0.00 USD, remaining 2.00 USD, 0 calls" in result.stdout
    assert not ledger.exists()


def test_a_wrapped_openai_client_is_held_to_the_budget(server: Any, tmp_path: Path) -> None:
    import openai

    cost = call_cost(server, tmp_path)
    ledger = tmp_path / "budget.db"
    client = openai.OpenAI(base_url=server.url, api_key="sk-test", max_retries=0)
    pipeclient.wrap(client, telemetry=telemetry(ledger, limit_usd=cost / NANO))
    client.chat.completions.create(model="m", messages=HI)  # type: ignore[arg-type]
    month = period_start(_now(), "month")
    wait_until(
        lambda: Ledger(ledger).totals(month, CLIENT_SCOPE).calls == 1, 10, "the ledger's write"
    )
    with pytest.raises(pipeclient.BudgetExceededError):
        client.chat.completions.create(model="m", messages=HI)  # type: ignore[arg-type]
    client.close()
    assert len(server.mock.requests) == 1


def _open_ledger_at_once(path: str, barrier: Any, results: Any) -> None:
    barrier.wait(30)
    try:
        Ledger(Path(path)).close()
        results.put("ok")
    except Exception as exc:  # reported to the parent, which fails the test
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_new_ledger_at_once_all_get_it(tmp_path: Path) -> None:
    # SQLite answers "database is locked" without waiting when processes switch a new file
    # to WAL or make its schema together; opening tries again within its timeout.
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for attempt in range(3):
        path = tmp_path / f"new-{attempt}.db"
        barrier, results = context.Barrier(8), context.Queue()
        workers = [
            context.Process(target=_open_ledger_at_once, args=(str(path), barrier, results))
            for _ in range(8)
        ]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(30)
        assert outcomes == ["ok"] * 8
