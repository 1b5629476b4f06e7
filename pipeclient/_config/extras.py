"""The optional packages: which extra installs each, whether it is there, and the error
that names the extra when a setting needs one that is not installed.

The base install is the client alone. Each telemetry SDK has its extra (`posthog`,
`langfuse`, `otlp`), and `crypto` brings `cryptography`: AES-256-GCM for the content
store, Ed25519 for signed audit checkpoints. Everything else (the audit log's hash chain,
its unsigned checkpoints and proofs, keyed fingerprints) is the standard library's.
"""

from __future__ import annotations

import importlib.util

from .._exceptions import ConfigError

__all__ = ["CRYPTO", "EXTRAS", "install_line", "missing_module", "require_crypto"]

#: the extra that installs `cryptography`
CRYPTO = "crypto"

# extra -> the modules it provides (those the code that needs it imports)
EXTRAS: dict[str, tuple[str, ...]] = {
    "posthog": ("posthog",),
    "langfuse": ("langfuse",),
    "otlp": ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http"),
    CRYPTO: ("cryptography",),
    "prices": ("genai_prices",),
}


def missing_module(extra: str) -> str | None:
    """The first module of the extra that cannot be imported, if any.

    Looked up, not imported: what needs it loads it later, when it is used."""
    for module in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package missing, or a broken one
            found = False
        if not found:
            return module
    return None


def install_line(extra: str) -> str:
    return f"pip install 'pipeclient[{extra}]'"


def require_crypto(
    needs: str, *, source: str | None = None, key: str | None = None, fix: str = ""
) -> None:
    """ConfigError naming what `needs` cryptography and the pip line, when it is missing.

    `needs` completes "... needs the cryptography package": e.g. "the content store
    (AES-256-GCM)". `fix` is the other way out, e.g. "or disable the store"."""
    if missing_module(CRYPTO) is None:
        return
    other = f", {fix}" if fix else ""
    raise ConfigError(
        f"{needs} needs the cryptography package, which is not installed; install it "
        f"with: {install_line(CRYPTO)} (or 'pipeclient[all]'){other}",
        source=source,
        key=key,
    )
