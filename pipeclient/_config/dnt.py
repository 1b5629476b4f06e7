"""DO_NOT_TRACK: the one function that decides it. Everything telemetry asks it first."""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["DO_NOT_TRACK_VARIABLE", "do_not_track"]

DO_NOT_TRACK_VARIABLE = "DO_NOT_TRACK"
_UNSET_VALUES = frozenset({"", "0", "false", "no", "off"})


def do_not_track(environ: Mapping[str, str] | None = None) -> bool:
    """True when DO_NOT_TRACK is present and not "", "0", "false", "no" or "off".

    Any other value, including ones this function has never seen, counts as set: a user
    who wrote something there meant to opt out.
    """
    value = (os.environ if environ is None else environ).get(DO_NOT_TRACK_VARIABLE)
    return value is not None and value.lower() not in _UNSET_VALUES
