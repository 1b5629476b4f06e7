"""The telemetry configuration models: the keys of `.pipelex/telemetry.toml`, typed.

The models are the documentation and the validator (`pipeclient init telemetry` writes
the file from them); they live in `pipeclient._config.models`.
"""

from ._config.models import (
    AuditConfig,
    ExportConfig,
    LangfuseConfig,
    OtlpConfig,
    PiiDetector,
    PostHogConfig,
    PrivacyConfig,
    TelemetryConfig,
)

__all__ = [
    "AuditConfig",
    "ExportConfig",
    "LangfuseConfig",
    "OtlpConfig",
    "PiiDetector",
    "PostHogConfig",
    "PrivacyConfig",
    "TelemetryConfig",
]
