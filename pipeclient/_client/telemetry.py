"""A client's telemetry: when it is due, how it is built, and an async call's durable
audit lines. Shared by `Client`/`AsyncClient` and by `pipeclient.wrap`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .._config.settings import DefaultSettings
from .._privacy.known_secrets import KnownSecrets
from .._telemetry.record import ErrorInfo
from .backends import Backend
from .router import Router

if TYPE_CHECKING:
    from .._config.settings import TelemetrySettings
    from .._telemetry.budget import Budget
    from .._telemetry.pipeline import Pipeline
    from .call import Call

__all__ = ["build_client_pipeline", "check_budget", "settle", "telemetry_due"]


def telemetry_due(settings: TelemetrySettings | DefaultSettings, router: Router) -> bool:
    """False when nothing configures telemetry and no gateway stream is due: then nothing
    starts, and the telemetry machinery is never imported."""
    return not (
        isinstance(settings, DefaultSettings) and (settings.do_not_track or not router.gateways)
    )


def build_client_pipeline(
    settings: TelemetrySettings,
    router: Router,
    backends: Sequence[Backend],
    secrets: KnownSecrets,
    redact: Callable[[str], str] | None,
) -> Pipeline | None:
    """The pipeline of a client calling these backends; the gateway's stream for those
    the router says are the gateway."""
    from .._builder import build_pipeline

    return build_pipeline(
        settings,
        gateways={b.name: (b.base_url, b.api_key.get_secret_value()) for b in router.gateways},
        api_keys={b.name: b.api_key.get_secret_value() for b in backends},
        secrets=secrets,
        redact=redact,
        local_backends=[b.name for b in backends if b.local],
    )


def check_budget(call: Call, budget: Budget | None) -> None:
    """Refuse a call over the `[budget]` limit before any network I/O: its record ends
    with the refusal (the only telemetry it leaves), and BudgetExceededError is raised.
    Listing models (a GET) costs nothing and is never refused."""
    if budget is None or call.method == "GET":
        return
    tracker = call.tracker
    refusal = budget.check(
        request_id=call.request_id,
        model=tracker.model,
        user_id=tracker.attribution.user_id,
        input_bytes=call.input_bytes,
    )
    if refusal is not None:
        tracker.finish(error=ErrorInfo(type(refusal).__name__, None))
        raise refusal


async def settle(call: Call, telemetry: Pipeline | None) -> None:
    """Write an async call's durable audit lines in a worker thread, before it returns."""
    deferred = call.deferred
    if deferred is None:
        return
    records = deferred.take()
    if records and telemetry is not None:
        import anyio.to_thread

        await anyio.to_thread.run_sync(telemetry.write_audits, records)
