"""The privacy step: the one place that decides what each destination may see.

It runs on the dispatcher's worker, before fan-out. A destination that may not receive
content (DESIGN 5.2) gets the record with its content and its error text removed; one
that may gets the content after the `[privacy]` transforms, computed once per record and
shared by every such destination. Sinks never see more than their view.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from ._record import CallRecord, TraceRecord, input_of
from .config import PrivacyConfig

__all__ = ["PrivacyStep", "map_strings"]

TRUNCATION_MARK = "…[truncated]"


def map_strings(value: Any, transform: Callable[[str], str]) -> Any:
    """`value` with `transform` applied to every string in it, keys excepted.

    Tool-call arguments are JSON inside a string: they are transformed inside, so they
    stay valid JSON.
    """
    if isinstance(value, str):
        return transform(value)
    if isinstance(value, list | tuple):
        return [map_strings(item, transform) for item in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "arguments" and isinstance(item, str):
                out[key] = _map_json_text(item, transform)
            else:
                out[key] = map_strings(item, transform)
        return out
    return value


def _map_json_text(text: str, transform: Callable[[str], str]) -> str:
    try:
        parsed = json.loads(text)
    except ValueError:
        return transform(text)
    return json.dumps(map_strings(parsed, transform), ensure_ascii=False)


class PrivacyStep:
    """Views of records, per destination: metadata only, or content after transforms."""

    def __init__(self, config: PrivacyConfig) -> None:
        self.config = config
        self._transforms: list[Callable[[str], str]] = []
        if config.content_max_length:
            limit = config.content_max_length
            self._transforms.append(
                lambda text: text if len(text) <= limit else text[:limit] + TRUNCATION_MARK
            )

    def metadata_only(self, record: CallRecord | TraceRecord) -> CallRecord | TraceRecord:
        if isinstance(record, TraceRecord):
            return record
        error = record.error
        if (
            record.input is None
            and record.output is None
            and record.request_body is None
            and (error is None or not error.message)
        ):
            return record
        return dataclasses.replace(
            record,
            request_body=None,
            input=None,
            output=None,
            error=dataclasses.replace(error, message=None) if error is not None else None,
        )

    def with_content(self, record: CallRecord | TraceRecord) -> CallRecord | TraceRecord:
        if isinstance(record, TraceRecord):
            return record
        content = record.input
        if record.request_body is not None:
            content = input_of(record.operation, json.loads(record.request_body))
        error = record.error
        return dataclasses.replace(
            record,
            request_body=None,
            input=self._clean(content),
            output=self._clean(record.output),
            error=(
                dataclasses.replace(error, message=self._clean(error.message))
                if error is not None and error.message
                else error
            ),
        )

    def _clean(self, content: Any) -> Any:
        if content is None or not self._transforms:
            return content

        def apply(text: str) -> str:
            for transform in self._transforms:
                text = transform(text)
            return text

        return map_strings(content, apply)
