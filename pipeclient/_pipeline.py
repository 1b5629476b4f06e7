"""Telemetry destinations. Each module imports its SDK only when a sink is used."""

from __future__ import annotations

from ._config.settings import TelemetrySettings
from ._telemetry.sink import Payload, Sink

__all__ = ["Payload", "Sink", "build_sinks"]


def build_sinks(settings: TelemetrySettings) -> list[Sink]:
    """The custom sinks the configuration enables (none under DO_NOT_TRACK)."""
    if settings.do_not_track:
        return []
    config = settings.config
    sinks: list[Sink] = []
    if config.posthog.enabled:
        from ._sinks.posthog import PostHogSink

        sinks.append(PostHogSink(config.posthog))
    if config.langfuse.enabled:
        from ._sinks.langfuse import LangfuseSink

        sinks.append(LangfuseSink(config.langfuse, service_name=settings.service_name))
    for table in config.otlp:
        if settings.otlp_enabled(table):
            from ._sinks.otlp.sink import OtlpSink

            sinks.append(OtlpSink(table, service_name=settings.service_name))
    return sinks
