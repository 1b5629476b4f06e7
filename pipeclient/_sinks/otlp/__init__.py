"""OTLP: GenAI semantic-convention spans and metrics, exported with the OpenTelemetry SDK's
OTLP/HTTP exporters (no provider, no thread of its own).
"""
