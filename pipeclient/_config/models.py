"""The telemetry configuration model: `.pipelex/telemetry.toml`, one class per table.

The model is the documentation: `pipeclient init telemetry` writes the file from it, each
key's comment is its field's description, so the file and the model cannot drift.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

from .budget import BudgetConfig
from .cache import CacheConfig
from .routing import RoutingConfig
from .urls import check_url

__all__ = [
    "AuditConfig",
    "ExportConfig",
    "LangfuseConfig",
    "ModelPriceConfig",
    "OtlpConfig",
    "PiiDetector",
    "PostHogConfig",
    "PricingConfig",
    "PrivacyConfig",
    "StoreConfig",
    "TelemetryConfig",
]

PiiDetector = Literal["email", "phone", "credit_card", "secret", "ip"]


# json_schema_extra of fields never shown, echoed or repr'd
SECRET: JsonDict = {"secret": True}


def _check_http_url(value: str, info: ValidationInfo) -> str:
    # Before placeholders are resolved, "${HOST}" is fine; afterwards it must be a URL.
    if "${" in value and not (info.context or {}).get("resolved"):
        return value
    check_url(value)
    return value


def secret_fields(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(
        name
        for name, field in model.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("secret")
    )


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class PostHogConfig(_Table):
    """PostHog: `$ai_generation` events, content redacted by default."""

    enabled: bool = Field(False, description="send an $ai_generation event per call to PostHog")
    host: str = Field("https://us.i.posthog.com", description="PostHog host (POSTHOG_HOST)")
    api_key: str = Field(
        "${POSTHOG_API_KEY}",
        description="project API key; ${VAR} reads the environment",
        repr=False,
        json_schema_extra=SECRET,
    )
    distinct_id: str = Field(
        "", description="empty: anonymous events ($process_person_profile = false)"
    )
    redact: bool = Field(
        True, description="strip prompts/completions and error text before sending"
    )
    redact_properties: list[str] = Field(
        default_factory=list, description="more property names to strip"
    )

    _urls = field_validator("host")(_check_http_url)


class LangfuseConfig(_Table):
    """Langfuse: one generation observation per call."""

    enabled: bool = Field(False, description="send a generation observation per call to Langfuse")
    host: str = Field(
        "https://cloud.langfuse.com", description="Langfuse host (LANGFUSE_HOST, LANGFUSE_BASE_URL)"
    )
    public_key: str = Field(
        "${LANGFUSE_PUBLIC_KEY}",
        description="Langfuse public key",
        repr=False,
        json_schema_extra=SECRET,
    )
    secret_key: str = Field(
        "${LANGFUSE_SECRET_KEY}",
        description="Langfuse secret key",
        repr=False,
        json_schema_extra=SECRET,
    )
    capture_content: bool = Field(
        True, description="send prompts and completions (after [privacy] detectors)"
    )

    _urls = field_validator("host")(_check_http_url)


class OtlpConfig(_Table):
    """One OTLP/HTTP endpoint: GenAI semantic-convention spans and metrics."""

    name: str = Field("collector", min_length=1, description="a name for this endpoint")
    enabled: bool = Field(False, description="export spans and metrics to this endpoint")
    endpoint: str = Field(
        "http://localhost:4318",
        description="base URL, as OTEL_EXPORTER_OTLP_ENDPOINT (which overrides the first "
        "table's): /v1/traces and /v1/metrics are appended",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description='HTTP headers, e.g. { authorization = "Bearer ${TOKEN}" }',
        repr=False,
        json_schema_extra=SECRET,
    )
    capture_content: bool = Field(
        True, description="put prompts and completions on spans (after [privacy] detectors)"
    )
    token_metrics: Literal["v1.41", "inference", "both"] = Field(
        "v1.41",
        description='"v1.41": gen_ai.client.token.usage; "inference": the newer '
        'gen_ai.client.inference.usage.{input,output}_tokens; "both"',
    )

    _urls = field_validator("endpoint")(_check_http_url)


class PrivacyConfig(_Table):
    """Applied once, before any destination, to content that may leave."""

    pii: list[PiiDetector] = Field(
        default_factory=list,
        description='detectors applied to content before ANY sink: "email", "phone", '
        '"credit_card", "secret", "ip"',
    )
    content_max_length: int = Field(0, ge=0, description="0: no limit")
    pseudonym_key: str = Field(
        "",
        description="16+ character secret, e.g. ${PIPECLIENT_PSEUDONYM_KEY}: pseudonyms of "
        "user, session and request ids stay the same across processes; empty: random per client",
        repr=False,
        json_schema_extra=SECRET,
    )

    @field_validator("pii")
    @classmethod
    def _unique(cls, value: list[PiiDetector]) -> list[PiiDetector]:
        return list(dict.fromkeys(value))

    @field_validator("pseudonym_key")
    @classmethod
    def _long_enough(cls, value: str, info: ValidationInfo) -> str:
        if "${" in value and not (info.context or {}).get("resolved"):
            return value
        if value and len(value) < 16:
            raise ValueError(
                f"must be empty or at least 16 characters (got {len(value)}); e.g. the output "
                'of `python -c "import secrets; print(secrets.token_urlsafe(32))"`'
            )
        return value


class AuditConfig(_Table):
    """The local, append-only, hash-chained audit log (metadata only)."""

    enabled: bool = Field(False, description="append one metadata-only line per call")
    path: str = Field(".pipelex/audit.jsonl", min_length=1, description="the log file")
    user_id: str = Field("", description="the internal user identifier written on each line")
    durable: bool = Field(
        False, description="true: each line is written and fsynced before the call returns"
    )
    signing_key: str = Field(
        "${PIPECLIENT_AUDIT_SIGNING_KEY}",
        description="Ed25519 private key (base64 of 32 raw bytes) signing checkpoints; "
        "unset: checkpoints are unsigned",
        repr=False,
        json_schema_extra=SECRET,
    )

    witness: Literal["none", "gateway"] = Field(
        "none",
        description='"gateway": `audit checkpoint` also sends the checkpoint (size, tree '
        "head, signature: no line) to the managed gateway",
    )
    rotate_mb: float = Field(
        0,
        ge=0,
        description="past this size (MiB) the log rolls into a new segment, chained to the "
        "last one's checkpoint; 0: never",
    )
    retention_days: float = Field(
        0,
        ge=0,
        description="delete segments last written longer ago than this (needs rotate_mb); "
        "0: keep all",
    )

    @property
    def has_signing_key(self) -> bool:
        """A key is set: not empty, and not a placeholder whose variable is unset."""
        return bool(self.signing_key.strip()) and "${" not in self.signing_key

    @model_validator(mode="after")
    def _retention_needs_segments(self) -> AuditConfig:
        if self.retention_days and not self.rotate_mb:
            raise ValueError(
                "retention_days deletes old segments of the log, and without rotate_mb "
                "there are none: set rotate_mb too (e.g. 64), or retention_days = 0"
            )
        return self

    @field_validator("signing_key")
    @classmethod
    def _signing_key(cls, value: str) -> str:
        # An unresolved ${VAR} means no key (checkpoints say they are unsigned).
        if value and "${" not in value and not _is_key_b64(value.strip()):
            raise ValueError(
                "is not an Ed25519 private key: expected the base64 of 32 raw bytes; make "
                "one with python -c 'import base64,os; print(base64.b64encode(os.urandom(32))"
                ".decode())'"
            )
        return value


def _is_key_b64(text: str) -> bool:
    import base64
    import binascii

    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


class StoreConfig(_Table):
    """The local encrypted content store: each call's request and response, per user."""

    enabled: bool = Field(
        False, description="keep each call's content, encrypted, in a local database"
    )
    path: str = Field(".pipelex/store.db", min_length=1, description="the SQLite database file")
    key: str = Field(
        "${PIPECLIENT_STORE_KEY}",
        description="the key-encryption key: 32 random bytes as base64",
        repr=False,
        json_schema_extra=SECRET,
    )
    ttl_hours: int = Field(
        24, gt=0, le=876_000, description="how long a record made with ephemeral=True is kept"
    )
    retention_days: int = Field(
        0, ge=0, le=365_000, description="records older than this are deleted; 0: keep"
    )


class ExportConfig(_Table):
    """Bounds of the background export."""

    flush_timeout_s: float = Field(
        2.0, gt=0, le=600, description="longest wait for telemetry at close() and exit, in seconds"
    )
    max_queue: int = Field(
        10000, gt=0, le=10_000_000, description="records held at most; more are dropped and counted"
    )


class ModelPriceConfig(_Table):
    """One model's price, in USD per million tokens."""

    input_per_mtok: float = Field(ge=0, allow_inf_nan=False, description="uncached input tokens")
    output_per_mtok: float = Field(ge=0, allow_inf_nan=False, description="output tokens")
    cached_input_per_mtok: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="input tokens read from the provider's cache (unset: input price)",
    )


class PricingConfig(_Table):
    """Where each call's cost comes from; overrides win over the table."""

    table: Literal["genai-prices", "none"] = Field(
        "genai-prices",
        description="the price table: genai-prices (pip install 'pipeclient[prices]') or none",
    )
    models: dict[str, ModelPriceConfig] = Field(
        default_factory=dict,
        description="per-model prices, by the model name sent (one line or table each)",
        json_schema_extra={
            "example": 'models."my-model" = { input_per_mtok = 2.5, output_per_mtok = 10.0 }'
        },
    )


class TelemetryConfig(_Table):
    """Every telemetry stream, each off by default."""

    posthog: PostHogConfig = Field(default_factory=PostHogConfig)
    langfuse: LangfuseConfig = Field(default_factory=LangfuseConfig)
    otlp: list[OtlpConfig] = Field(
        default_factory=lambda: [OtlpConfig()], description="any number of these tables"
    )
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    pricing: PricingConfig = Field(default_factory=PricingConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)

    @field_validator("otlp")
    @classmethod
    def _unique_names(cls, value: list[OtlpConfig]) -> list[OtlpConfig]:
        names = [table.name for table in value]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"[[otlp]] names must be unique; repeated: {', '.join(repeated)}")
        return value


def section_models() -> dict[str, type[BaseModel]]:
    """The tables of the file, in file order."""
    return {
        name: _table_type(field.annotation) for name, field in TelemetryConfig.model_fields.items()
    }


def _table_type(annotation: Any) -> type[BaseModel]:
    args = getattr(annotation, "__args__", None)
    return args[0] if args else annotation  # type: ignore[no-any-return]


_FILE_HEADER = """\
# pipeclient telemetry configuration, written by `pipeclient init telemetry`.
# Every stream is off until you set enabled = true. "${VAR}" and "${VAR:-default}" read
# the environment. Environment variables override this file: PIPECLIENT_<TABLE>__<KEY>
# (e.g. PIPECLIENT_POSTHOG__ENABLED=true), and POSTHOG_HOST, LANGFUSE_HOST and
# OTEL_EXPORTER_OTLP_ENDPOINT (the first [[otlp]] table's endpoint) override the hosts
# written below; `pipeclient telemetry status` shows which value won. DO_NOT_TRACK=1
# turns all telemetry off.
# Every key is described in docs/configuration.md.
"""


def default_file_text() -> str:
    """The default `.pipelex/telemetry.toml`: every key, its default, and its description."""
    defaults = TelemetryConfig()
    parts = [_FILE_HEADER]
    for name, field in TelemetryConfig.model_fields.items():
        value = getattr(defaults, name)
        tables = value if isinstance(value, list) else [value]
        header = f"[[{name}]]" if isinstance(value, list) else f"[{name}]"
        if field.description:  # e.g. "[[otlp]]  # any number of these tables"
            header = f"{header:<36} # {field.description}"
        parts.append(f"\n# {(type(tables[0]).__doc__ or '').strip()}\n")
        for table in tables:
            parts.append(header + "\n")
            parts += _table_lines(table)
    return "".join(parts)


def _table_lines(table: BaseModel) -> list[str]:
    lines = []
    for key, field in type(table).model_fields.items():
        value = getattr(table, key)
        extra = field.json_schema_extra
        if value in ({}, []) and isinstance(extra, dict) and "example" in extra:
            # Left unset, so that the user may add `[table.key."name"]` tables below.
            example = str(extra["example"]).replace("\n", "\n# ")
            lines.append(f"# {example}\n# {key}: {field.description}\n")
            continue
        if value is None and isinstance(extra, dict) and "example" in extra:
            lines.append(f"# {extra['example']:<34} # {field.description}\n")  # unset
            continue
        assignment = f"{key} = {_toml_value(value)}"
        lines.append(f"{assignment:<36} # {field.description}\n")
    return lines


def _toml_value(value: Any) -> str:
    import tomli_w

    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }"
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()
