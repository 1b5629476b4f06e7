"""Detectors for `[privacy] pii`: find, validate, replace with a typed placeholder.

Each detector is a compiled pattern that finds candidates cheaply, and a check that
validates them (Luhn and card-number ranges, `ipaddress`, numbering-plan rules), so that
ordinary numbers, dates, versions, prices and identifiers are left alone. A `Redactor`
applies the client's own secrets (always) and then the enabled detectors, in a fixed
order, and counts what it replaced, never what it saw.
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import re
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from .known_secrets import KNOWN_SECRET, MIN_KNOWN_SECRET_LENGTH, KnownSecrets, placeholder

__all__ = [
    "DETECTOR_ORDER",
    "KNOWN_SECRET",
    "MIN_KNOWN_SECRET_LENGTH",
    "Detector",
    "Redactor",
    "luhn_valid",
    "placeholder",
]

# Secrets first (a token may hold digits that look like a card or a phone), then the rest.
DETECTOR_ORDER = ("secret", "email", "credit_card", "phone", "ip")
# No detector matches fewer characters ("a@b.co"; known secrets are longer).
_SHORTEST_MATCH = 6

Accept = Callable[[re.Match[str]], "tuple[int, int] | None"]


class Detector:
    """Finders (a pattern for candidates, and a check returning the span to replace, or
    None: not PII after all), run one after the other. `hints`: substrings one of which
    every match contains; a text without any is not scanned.

    Patterns start with a literal or a character class (boundaries are look-behinds
    after the first character), so the regex engine skips other positions in C.
    """

    __slots__ = ("finders", "hints", "name", "placeholder")

    def __init__(
        self,
        name: str,
        finders: tuple[tuple[re.Pattern[str], Accept], ...],
        hints: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.finders = finders
        self.hints = hints
        self.placeholder = placeholder(name)

    def redact(self, text: str) -> tuple[str, int]:
        if self.hints and not any(hint in text for hint in self.hints):
            return text, 0
        total = 0
        for pattern, accept in self.finders:
            pieces: list[str] = []
            last = count = at = 0
            while (match := pattern.search(text, at)) is not None:
                span = accept(match)
                if span is None:
                    # Not this one; a real one may start inside it ("0000 4111 1111 1111
                    # 1111": the first four groups were tried as a card).
                    at = match.start() + 1
                    continue
                start, end = span
                pieces += (text[last:start], self.placeholder)
                last = at = end
                count += 1
            if count:
                pieces.append(text[last:])
                text = "".join(pieces)
                total += count
        return text, total

    def finds(self, text: str) -> bool:
        """Whether `redact` would replace anything (stops at the first match)."""
        if self.hints and not any(hint in text for hint in self.hints):
            return False
        for pattern, accept in self.finders:
            at = 0
            while (match := pattern.search(text, at)) is not None:
                if accept(match) is not None:
                    return True
                at = match.start() + 1
        return False


# -- email --------------------------------------------------------------------------------

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(
    r"(?<![\w.%+\-])[\w.%+\-]{1,64}@" + _LABEL + r"(?:\." + _LABEL + r")*\.(?P<tld>[A-Za-z]{2,24})"
    r"(?![\w\-]|\.[A-Za-z0-9])"
)
# "icon@2x.png", "logo@3x.webp": asset names, not addresses.
_FILE_SUFFIX = re.compile(
    r"(?i)png|jpe?g|gif|svg|webp|ico|bmp|tiff?|avif|[mc]?js|jsx|tsx?|s?css|less|json|ya?ml"
    r"|toml|lock|txt|md|html?|xml|pdf|zip|t?gz|tar|whl|pyc?|rb|rs|go|java|kt|swift|[ch]pp"
    r"|cs|php|sh|wasm|map"
)


def _accept_email(match: re.Match[str]) -> tuple[int, int] | None:
    if _FILE_SUFFIX.fullmatch(match["tld"]):
        return None
    text, end = match.string, match.end()
    # "git@github.com:org/repo.git" is an SSH remote, not an address.
    if text[end : end + 1] == ":" and text[end + 1 : end + 2] not in ("", " ", "\n", "\t"):
        return None
    return match.span()


# -- credit cards -------------------------------------------------------------------------

_CARD = re.compile(
    r"\d(?<![\d.,\-+/]\d)"
    r"(?:\d{3}(?P<s>[ \-])\d{4}(?P=s)\d{4}(?P=s)\d{4}(?:(?P=s)\d{3})?"  # 4-4-4-4(-3)
    r"|\d{3}(?P<t>[ \-])\d{6}(?P=t)\d{4,5}"  # 4-6-5 (Amex), 4-6-4 (Diners)
    r"|\d{12,18})"
    r"(?!\d|[.,/\-]\d)"
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_network_length(digits: str) -> bool:
    """Whether the number starts like an issued card (IIN ranges) and has its length."""
    n = len(digits)
    p2, p3, p4, p6 = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:  # Mastercard
        return n == 16
    if p2 in (34, 37):  # American Express
        return n == 15
    if 2200 <= p4 <= 2204:  # Mir
        return 16 <= n <= 19
    if p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925:  # Discover
        return 16 <= n <= 19
    if 3528 <= p4 <= 3589:  # JCB
        return 16 <= n <= 19
    if 300 <= p3 <= 305 or p4 == 3095 or p2 in (36, 38, 39):  # Diners Club
        return 14 <= n <= 19
    if p2 in (62, 81):  # UnionPay
        return 16 <= n <= 19
    if p2 == 50 or 56 <= p2 <= 69:  # Maestro
        return 13 <= n <= 19
    return False


def _accept_card(match: re.Match[str]) -> tuple[int, int] | None:
    digits = match.group().replace(" ", "").replace("-", "")
    if len(set(digits)) > 1 and _card_network_length(digits) and luhn_valid(digits):
        return match.span()
    return None


# -- phone numbers ------------------------------------------------------------------------

_PHONE_END = r"(?!\w|[.\-]\d)"
_PHONE_PATTERNS = (
    # International, any country's grouping: +CC then groups (one "(0)" or "(area)").
    re.compile(
        r"\+(?<![\w+\-.]\+)(?:\d{7,15}"
        r"|\d{1,4}(?:[ .\-/]?\(\d{1,4}\)[ .\-/]?\d{1,8})?(?:[ .\-/]\d{1,8}){0,6})" + _PHONE_END
    ),
    # North American: (415) 555-0100, 415-555-0100, 415.555.0100, 1-800-555-0199.
    re.compile(r"\((?<![\w+\-.]\()\d{3}\) ?\d{3}[ .\-]\d{4}" + _PHONE_END),
    re.compile(r"\d(?<![\w+\-.(]\d)(?:[ .\-]\d{3}[ .\-]|\d{2}[ .\-])\d{3}[ .\-]\d{4}" + _PHONE_END),
)
_NOT_DIGIT = re.compile(r"\D")
_LAST_GROUP = re.compile(r"[ .\-/]+\(?\d+\)?$")


@functools.cache
def phone_library() -> Any:
    """`phonenumbers` when installed (validates numbers by each country's plan), else None.
    Imported on first use, on the worker: only when the phone detector is on."""
    try:
        return importlib.import_module("phonenumbers")
    except ImportError:
        return None


def _nanp(digits: str) -> bool:
    """Ten digits that could be a North American number: NXX-NXX-XXXX, no N11 or N9X area."""
    return (
        len(digits) == 10
        and digits[0] >= "2"
        and digits[1] != "9"
        and digits[1:3] != "11"
        and digits[3] >= "2"
        and digits[4:6] != "11"
    )


def _valid_phone(candidate: str, library: Any) -> bool:
    digits = _NOT_DIGIT.sub("", candidate)
    international = candidate.startswith("+")
    if library is not None:
        try:
            number = library.parse(candidate, None if international else "US")
        except Exception:  # phonenumbers.NumberParseException
            return False
        return bool(library.is_valid_number(number))
    if not international:
        return _nanp(digits[1:] if len(digits) == 11 else digits)
    if not 8 <= len(digits) <= 15:
        return False
    if digits[0] == "1":
        return len(digits) == 11 and _nanp(digits[1:])
    return digits[0] != "7" or len(digits) == 11


def _accept_phone(match: re.Match[str]) -> tuple[int, int] | None:
    library = phone_library()
    candidate = match.group()
    start = match.start()
    while True:
        if _valid_phone(candidate, library):
            return start, start + len(candidate)
        # "+1 415 555 0100 2024": the greedy match took one group too many.
        shorter = _LAST_GROUP.sub("", candidate)
        if shorter == candidate or len(_NOT_DIGIT.sub("", shorter)) < 8:
            return None
        candidate = shorter


# -- IP addresses -------------------------------------------------------------------------

# Both are found from their first "." or ":" (a fast literal search), then extended back
# over the first group, whose start must be a boundary.
_IPV4 = re.compile(r"\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\w|\.\d)")
# (An address is at most 45 characters: candidates are bounded, so scans stay linear.)
_IPV6 = re.compile(r":[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]{0,40}(?<=[0-9A-Fa-f:])(?![\w:])")
_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")
# A dotted quad read as a version, not an address: written as one ("v1.2.3.4": the
# boundary excludes it; "==1.2.3.4", "@1.2.3.4", "version 1.2.3.4", "build: 10.0.0.1"), or
# every part a single digit ("fixed in 1.6.0.5"; rarely a person's address: the known
# ones, 1.1.1.1, 8.8.8.8, 9.9.9.9, are public resolvers).
_VERSION_CONTEXT = re.compile(
    r"(?i)(?:[=<>!~]=|[\^~@]|\b(?:version|ver|release|rel|build|rev|revision|v)\s*[:=]?\s*)$"
)
_SINGLE_DIGITS = re.compile(r"\d\.\d\.\d\.\d")
_HEX_DIGIT_GROUP = re.compile(r"[0-9A-Fa-f]{4}")


def _ordinary_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Addresses that identify no one: loopback, unspecified, multicast, reserved/netmasks."""
    return (
        address.is_loopback
        or address.is_unspecified
        or address.is_multicast
        or (address.version == 4 and address.is_reserved)
    )


def _first_group_start(text: str, at: int, chars: frozenset[str]) -> int | None:
    """Where the group ending at `at` starts (at most 4 `chars`), if that is a boundary."""
    start = at
    while start > 0 and at - start < 4 and text[start - 1] in chars:
        start -= 1
    if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_.:"):
        return None
    return start


def _accept_ipv4(match: re.Match[str]) -> tuple[int, int] | None:
    text = match.string
    start = _first_group_start(text, match.start(), _DIGITS)
    if (
        start is None
        or start == match.start()
        or _SINGLE_DIGITS.fullmatch(text, start, match.end())
        or _VERSION_CONTEXT.search(text, max(0, start - 12), start)
    ):
        return None
    try:
        address = ipaddress.IPv4Address(text[start : match.end()])
    except ValueError:
        return None
    return None if _ordinary_address(address) else (start, match.end())


def _accept_ipv6(match: re.Match[str]) -> tuple[int, int] | None:
    text = match.string
    start = _first_group_start(text, match.start(), _HEX)
    if start is None:
        return None
    value = text[start : match.end()]
    groups = [group for group in value.split(":") if group]
    # "1::2" in a slice, "beef::cafe", "10:30:00": not how addresses are written.
    if not any(char.isdigit() for char in value) or (
        len(groups) < 3 and not any(_HEX_DIGIT_GROUP.fullmatch(g) for g in groups)
    ):
        return None
    try:
        address = ipaddress.IPv6Address(value)
    except ValueError:
        return None
    mapped = address.ipv4_mapped
    if _ordinary_address(address if mapped is None else mapped):
        return None
    return start, match.end()


def build_detector(name: str) -> Detector:
    if name == "secret":  # the largest pattern: compiled only when the detector is on
        from .secret_patterns import SECRET_PATTERN, accept_secret

        return Detector("secret", ((SECRET_PATTERN, accept_secret),))
    if name == "email":
        return Detector("email", ((_EMAIL, _accept_email),), ("@",))
    if name == "credit_card":
        return Detector("credit_card", ((_CARD, _accept_card),))
    if name == "phone":
        return Detector("phone", tuple((pattern, _accept_phone) for pattern in _PHONE_PATTERNS))
    if name == "ip":
        return Detector("ip", ((_IPV4, _accept_ipv4), (_IPV6, _accept_ipv6)))
    raise ValueError(f"unknown detector {name!r}; known: {', '.join(DETECTOR_ORDER)}")


class Redactor:
    """The client's own secrets (always, whatever `pii` says), then the enabled detectors."""

    __slots__ = ("_detectors", "_secrets", "active")

    def __init__(self, detectors: Iterable[str] = (), secrets: Iterable[str] = ()) -> None:
        self._secrets = secrets if isinstance(secrets, KnownSecrets) else KnownSecrets(secrets)
        wanted = set(detectors)
        for name in wanted - set(DETECTOR_ORDER):
            build_detector(name)  # raises, naming the known detectors
        self._detectors = tuple(build_detector(n) for n in DETECTOR_ORDER if n in wanted)
        self.active = bool(self._secrets or self._detectors)

    def redact(self, text: str, counts: MutableMapping[str, int]) -> str:
        """`text` with what was found replaced; `counts` gets the number per detector."""
        if len(text) < _SHORTEST_MATCH or is_inline_data(text):
            return text
        text = self._secrets.replace(text, counts)
        for detector in self._detectors:
            text, found = detector.redact(text)
            if found:
                counts[detector.name] = counts.get(detector.name, 0) + found
        return text

    def finds(self, text: str) -> str | None:
        """The first detector (or KNOWN_SECRET) that `redact` would apply to `text`."""
        if len(text) < _SHORTEST_MATCH or is_inline_data(text):
            return None
        if any(secret in text for secret in self._secrets):
            return KNOWN_SECRET
        for detector in self._detectors:
            if detector.finds(text):
                return detector.name
        return None


_MEDIA_TYPE = re.compile(r"(?:[\w.+-]+/[\w.+-]+)?(?:;[\w.+-]+=[\w.+-]+)*")
_BASE64 = re.compile(r"[A-Za-z0-9+/=\r\n]*")


def is_inline_data(text: str) -> bool:
    """An inline image or file (`data:<media type>;base64,<base64>`), the whole string: not
    text the detectors read. Anything else after the prefix makes it text again."""
    if not text.startswith("data:"):
        return False
    mark = text.find(";base64,", 5, 256)
    return (
        mark >= 0
        and _MEDIA_TYPE.fullmatch(text, 5, mark) is not None
        and _BASE64.fullmatch(text, mark + 8) is not None
    )
