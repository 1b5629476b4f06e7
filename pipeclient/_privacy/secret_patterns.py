"""The `secret` detector's patterns: provider API keys, tokens and private keys.

Each pattern is specific to a provider's documented key format (a fixed prefix, a
minimum length, a boundary on both sides), so that words, identifiers and code are left
alone. A pattern with a `value` group is a key only in context (`Bearer <token>`,
`aws_secret_access_key = <value>`, `scheme://user:<password>@`): only the value is
replaced, and the context stays readable.

The patterns are joined into one regex whose alternatives all start with a literal (the
word boundary is a look-behind placed after the prefix), so the regex engine tries only
the positions holding one of those first characters, and drops most of them at once.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["SECRET_PATTERN", "accept_secret"]

_E = r"(?![A-Za-z0-9_\-])"  # not followed by a character that could extend a token


def _token(prefix: str, rest: str) -> str:
    """A token that starts with `prefix` and is not inside a longer word."""
    literal = re.escape(prefix)
    return f"{literal}(?<![A-Za-z0-9_\\-]{literal}){rest}{_E}"


def _any_case(word: str, rest: str) -> tuple[str, ...]:
    """`word` in any case, as two alternatives that each start with a literal."""
    return tuple(f"{first}(?i:{word[1:]}){rest}" for first in (word[0].lower(), word[0].upper()))


class _Kind(NamedTuple):
    pattern: str  # starts with a literal; may define a group named `value`
    needs_digit: bool = False  # the value must contain a digit


_AWS_SECRET = r"[\"']?\s*[:=]\s*[\"']?(?P<value>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
_BASIC = r"[\"']?\s*[:=]\s*[\"']?Basic[ \t]+(?P<value>[A-Za-z0-9+/]{8,}=*)"
_BEARER = r"earer[ \t]+(?P<value>[A-Za-z0-9._~+/\-]{12,}=*)(?![A-Za-z0-9._~+/=\-])"

_KINDS: tuple[_Kind, ...] = (
    # PEM private key blocks (RSA, EC, OPENSSH, ENCRYPTED, PGP ...): the BEGIN line here,
    # the rest (up to the END line) in `accept_secret`.
    _Kind(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?P<pem>)"),
    # JSON Web Tokens: base64url header and payload (JSON objects: "eyJ"), signature.
    _Kind(_token("eyJ", r"[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*")),
    # OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-), Anthropic (sk-ant-api03-...),
    # Langfuse (sk-lf-..., pk-lf-...).
    _Kind(_token("sk-", r"[A-Za-z0-9_\-]{20,}")),
    _Kind(_token("sk-lf-", r"[A-Za-z0-9\-]{8,}")),
    _Kind(_token("pk-lf-", r"[A-Za-z0-9\-]{8,}")),
    # Stripe secret and restricted keys, webhook signing secrets.
    _Kind(_token("sk_", r"(?:live|test)_[A-Za-z0-9]{16,}")),
    _Kind(_token("rk_", r"(?:live|test)_[A-Za-z0-9]{16,}")),
    _Kind(_token("whsec_", r"[A-Za-z0-9]{24,}")),
    # AWS access key ids (long-term AKIA, temporary ASIA, ...) and Google API keys.
    _Kind(r"A(?:KIA|SIA|BIA|CCA)(?<![A-Za-z0-9].{4})[A-Z0-9]{16}(?![A-Za-z0-9])"),
    _Kind(_token("AIza", r"[0-9A-Za-z_\-]{35}")),
    # AWS secret access keys: 40 base64 characters, recognised by the name they follow.
    *(_Kind(p) for p in _any_case("aws_?secret_?(?:access_?)?key", _AWS_SECRET)),
    *(_Kind(p) for p in _any_case("secret_?access_?key", _AWS_SECRET)),
    # GitHub: classic tokens (ghp_, gho_, ghu_, ghs_, ghr_) and fine-grained PATs.
    _Kind(_token("gh", r"[pousr]_[A-Za-z0-9]{36,255}")),
    _Kind(_token("github_pat_", r"[A-Za-z0-9_]{22,255}")),
    # Slack: bot, user, app-level tokens, and incoming-webhook URLs.
    _Kind(_token("xox", r"[abposre]-[A-Za-z0-9\-]{10,}")),
    _Kind(_token("xapp-", r"\d-[A-Za-z0-9\-]{10,}")),
    _Kind(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_\-]{8,}"),
    # PostHog project (phc_) and personal (phx_) API keys.
    _Kind(_token("ph", r"[cx]_[A-Za-z0-9]{20,}")),
    # HTTP authorization values: `Bearer <token>`, `Authorization: Basic <credentials>`.
    *(_Kind(f"{b}(?<![A-Za-z0-9]{b}){_BEARER}", needs_digit=True) for b in "Bb"),
    *(_Kind(p) for p in _any_case("authorization", _BASIC)),
    # Passwords in URLs: scheme://user:<password>@host.
    _Kind(r"://[^\s/:@\"'<>]{1,64}:(?P<value>[^\s/@\"'<>]{1,256})@(?=[A-Za-z0-9\[])"),
)

SECRET_PATTERN = re.compile(
    "|".join(kind.pattern.replace("?P<value>", f"?P<v{i}>") for i, kind in enumerate(_KINDS))
)
_VALUE_NEEDS_DIGIT = {f"v{i}": kind.needs_digit for i, kind in enumerate(_KINDS)}
# Tokens of these kinds are random: something that merely looks like one ("sk-" and a
# long hyphenated name) has no digit.
_TOKENS_NEEDING_DIGIT = ("sk-", "pk-lf-", "xox")
_DIGIT = re.compile(r"\d")


_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
# A block without its END line (a truncated paste): its base64 body, headers, escapes.
_PEM_BODY = re.compile(r"[A-Za-z0-9+/=\s\\:,\-]{0,16384}")
_PEM_MAX = 16384  # far more than any private key (RSA 4096: about 3.3 KB)


def _pem_end(text: str, start: int) -> int:
    found = _PEM_END.search(text, start, start + _PEM_MAX)
    if found is not None:
        return found.end()
    body = _PEM_BODY.match(text, start)
    return body.end() if body is not None else start


def accept_secret(match: re.Match[str]) -> tuple[int, int] | None:
    """The span of `match` to replace (all of it, or its `value` group), or None when it
    is not a secret after all."""
    name = match.lastgroup  # the value group of the alternative that matched, if any
    if name == "pem":
        return match.start(), _pem_end(match.string, match.end())
    if name is not None:
        start, end = match.span(name)
        needs_digit = _VALUE_NEEDS_DIGIT[name]
    else:
        start, end = match.span()
        needs_digit = match.string.startswith(_TOKENS_NEEDING_DIGIT, start)
    if needs_digit and _DIGIT.search(match.string, start, end) is None:
        return None
    return start, end
