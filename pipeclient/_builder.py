"""The pipeline builder: the only code that turns telemetry settings into sinks.

The client, `pipeclient telemetry preview` and `capture_telemetry()` all build their
telemetry here, so what a preview or a capture shows is what a client sends. Each sink
gets its audience (what it may see, DESIGN 5.2) from the privacy step's table; under
DO_NOT_TRACK no custom sink and no gateway sink is built, and no thread starts but those
of the content store and the spend ledger, when they are on (local, like the audit log).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from ._config.extras import install_line, missing_module, require_crypto
from ._config.file import KeyPath
from ._config.settings import TelemetrySettings, key_name, value_source, where_value
from ._exceptions import ConfigError
from ._privacy.known_secrets import KnownSecrets
from ._telemetry.fanout import Fanout, Route
from ._telemetry.pipeline import Pipeline
from ._telemetry.pricing import ModelPrice, Pricer
from ._telemetry.privacy import (
    AUDIT,
    BUDGET,
    GATEWAY,
    STORE,
    PrivacyStep,
    audience_of,
    telemetry_secrets,
)
from ._telemetry.recorder import CAPTURE
from ._telemetry.sink import Payload, Sink

if TYPE_CHECKING:
    from ._config.models import PricingConfig
    from ._telemetry.budget import Budget
    from ._telemetry.dispatch import Dispatcher
    from ._telemetry.recorder import Recorder

__all__ = ["build_budget", "build_pipeline", "check_local_extras", "custom_routes"]


def pricer_of(pricing: PricingConfig, local_backends: Iterable[str] = ()) -> Pricer | None:
    """The pricer of `[pricing]`; None when nothing could be priced."""
    if pricing.table == "none" and not pricing.models:
        return None
    overrides = {
        name: ModelPrice(price.input_per_mtok, price.output_per_mtok, price.cached_input_per_mtok)
        for name, price in pricing.models.items()
    }
    return Pricer(overrides, pricing.table, local_backends=local_backends)


def build_budget(settings: TelemetrySettings, pricer: Pricer | None) -> Budget:
    """The `[budget]` of these settings, its ledger opened now (an unusable path is a
    ConfigError when the client is made, not at its first call)."""
    from ._telemetry.budget import Budget
    from ._telemetry.ledger import Ledger

    config, sources = settings.config.budget, settings.sources
    limit_source = where_value(("budget", "limit_usd"), sources)
    path_source = where_value(("budget", "path"), sources) if "budget.path" in sources else None
    ledger = Ledger(config.path, source=path_source or limit_source)
    return Budget(config, ledger, pricer=pricer, limit_source=limit_source)


def check_sdk(extra: str, stream: str, path: KeyPath, settings: TelemetrySettings) -> None:
    """A ConfigError naming the stream and the pip line when its SDK is not installed."""
    module = missing_module(extra)  # each stream's SDK is the extra of the same name
    if module is None:
        return
    raise ConfigError(
        f"the {stream} stream is enabled but its SDK is not installed (no module "
        f"{module!r}); install it with: {install_line(extra)} "
        f"(or 'pipeclient[all]'), or disable the stream",
        source=where_value(path, settings.sources),
        key=key_name(path),
    )


def check_local_extras(settings: TelemetrySettings) -> None:
    """A ConfigError naming the key and the pip line when the content store or a signing
    key for the audit log is configured without `cryptography` (the `crypto` extra)."""
    config = settings.config
    if config.store.enabled:
        require_crypto(
            "the content store ([store] enabled = true; AES-256-GCM)",
            source=where_value(("store", "enabled"), settings.sources),
            key="store.enabled",
            fix="or disable the store",
        )
    if config.audit.enabled and config.audit.has_signing_key:
        require_crypto(
            "[audit] signing_key (Ed25519 signatures of audit checkpoints)",
            source=where_value(("audit", "signing_key"), settings.sources),
            key="audit.signing_key",
            fix="or leave signing_key unset (checkpoints are then unsigned)",
        )
    budgeted = config.budget.enabled and config.pricing.table == "genai-prices"
    if budgeted and missing_module("prices") is not None:
        # Every call would be unpriced: the limit would silently never be reached.
        raise ConfigError(
            "[budget] prices calls with the genai-prices table, which is not installed, "
            f"so no call would count against the limit; install it with: "
            f"{install_line('prices')}, or price your models in [pricing.models] and "
            'set [pricing] table = "none"',
            source=where_value(("budget", "limit_usd"), settings.sources),
            key="budget.limit_usd",
        )


def custom_routes(settings: TelemetrySettings) -> list[Route]:
    """The custom streams the configuration enables (none under DO_NOT_TRACK).

    A stream enabled without its SDK is a ConfigError, raised before any sink exists."""
    if settings.do_not_track:
        return []
    config = settings.config
    if config.posthog.enabled:
        check_sdk("posthog", "posthog", ("posthog", "enabled"), settings)
    if config.langfuse.enabled:
        check_sdk("langfuse", "langfuse", ("langfuse", "enabled"), settings)
    for index, table in enumerate(config.otlp):
        if settings.otlp_enabled(table):
            check_sdk("otlp", f"otlp {table.name!r}", ("otlp", index, "enabled"), settings)
    routes: list[Route] = []
    if config.posthog.enabled:
        from ._sinks.posthog import PostHogSink

        routes.append(Route(PostHogSink(config.posthog), audience_of(config.posthog)))
    if config.langfuse.enabled:
        from ._sinks.langfuse import LangfuseSink

        sink: Sink = LangfuseSink(config.langfuse, service_name=settings.service_name)
        routes.append(Route(sink, audience_of(config.langfuse)))
    for table in config.otlp:
        if settings.otlp_enabled(table):
            from ._sinks.otlp.sink import OtlpSink

            sink = OtlpSink(table, service_name=settings.service_name)
            routes.append(Route(sink, audience_of(table)))
    return routes


def build_pipeline(
    settings: TelemetrySettings,
    *,
    gateways: Mapping[str, tuple[str, str]] | None = None,
    api_keys: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
    redact: Callable[[str], str] | None = None,
    capture: dict[str, list[Payload]] | None = None,
    local_backends: Iterable[str] = (),
) -> Pipeline | None:
    """The telemetry of one client; None when nothing is on.

    `gateways`: backend name -> (base URL, API key) of each backend that is the managed
    gateway; its stream is mandatory, no setting turns it off. `api_keys`: backend name ->
    key, for the audit log's default user ids. `secrets`: the client's own, scrubbed from
    content. `capture`: record payloads there instead of sending them (else the store of
    an enclosing `capture_telemetry()`, if any). `local_backends`: names of the client's
    `local=True` backends, whose calls only `[pricing.models]` prices (no price table).
    """
    config = settings.config
    if capture is None:
        capture = CAPTURE.get()
    check_local_extras(settings)
    routes = custom_routes(settings)
    if gateways and not settings.do_not_track:
        from ._sinks.gateway.sink import GatewaySink, GatewayTarget

        targets = {name: GatewayTarget(url, key) for name, (url, key) in gateways.items()}
        routes.append(Route(GatewaySink(targets), GATEWAY))
    # The audit log is local, not telemetry: it follows only its own setting. Written at
    # once when durable (before the call returns) or under DO_NOT_TRACK (no worker thread
    # may exist then); else by the dispatcher, flushed at close.
    audit_now: Sink | None = None
    audit = config.audit
    if audit.enabled:
        from ._sinks.audit import build_audit_sink

        audit_sink = build_audit_sink(
            path=audit.path,
            user_id=audit.user_id,
            durable=audit.durable,
            api_keys=api_keys or {},
            source=where_value(("audit", "path"), settings.sources),
            open_log=capture is None,
            rotate_mb=audit.rotate_mb,
            retention_days=audit.retention_days,
            signing_key=audit.signing_key if audit.has_signing_key else "",
        )
        if capture is None and (audit.durable or settings.do_not_track):
            audit_now = audit_sink
        else:
            routes.append(Route(audit_sink, AUDIT))
    # The content store is local too, and follows only its own setting; it always has
    # its own lane (its writes never run on the caller's thread), DO_NOT_TRACK or not.
    if config.store.enabled:
        from ._sinks.store import build_store_sink

        routes.append(
            Route(
                build_store_sink(
                    config.store,
                    api_keys=api_keys or {},
                    key_source=value_source(("store", "key"), settings),
                    path_source=where_value(("store", "path"), settings.sources),
                    open_store=capture is None,
                ),
                STORE,
            )
        )
    # The spend ledger is local too: its lane records each call's cost once priced.
    pricer = pricer_of(config.pricing, local_backends)
    budget: Budget | None = None
    if config.budget.enabled:
        from ._sinks.budget import BudgetSink

        budget = build_budget(settings, pricer) if capture is None else None
        by_user = config.budget.scope == "user"
        routes.append(Route(BudgetSink(budget, by_user=by_user), BUDGET))
    if not routes and audit_now is None:
        return None
    privacy = PrivacyStep(
        config.privacy,
        secrets=KnownSecrets(secrets) + telemetry_secrets(config),
        redact=redact,
    )
    exporter: Dispatcher | Recorder | None = None
    if routes:
        fanout = Fanout(routes, privacy, pricer)
        if capture is not None:
            from ._telemetry.recorder import Recorder

            exporter = Recorder(fanout, capture)
        else:
            from ._telemetry.dispatch import Dispatcher

            exporter = Dispatcher(
                fanout,
                max_queue=config.export.max_queue,
                flush_timeout=config.export.flush_timeout_s,
            )
    return Pipeline(
        privacy,
        exporter,
        audit_now=audit_now,
        wants_content=any(route.audience.content for route in routes),
        budget=budget,
    )
