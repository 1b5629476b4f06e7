"""Structured outputs: `chat.completions.parse(response_format=PydanticModel)`.

A model class becomes a strict `json_schema` response format (the form the API's strict
mode accepts: closed objects, every property required, no `$ref` with siblings); the
answer's content is validated into that class as `message.parsed`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from .._exceptions import APIResponseValidationError, ConfigError
from ..types import ChatCompletion, ParsedChatCompletion

__all__ = ["parsed_completion", "response_format_of"]


def _is_model_class(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _adapter(target: Any) -> TypeAdapter[Any] | None:
    if _is_model_class(target) or hasattr(target, "__pydantic_config__"):
        return TypeAdapter(target)  # a pydantic model or a pydantic dataclass
    return None


def response_format_of(response_format: Any) -> tuple[Any, TypeAdapter[Any] | None]:
    """(what to send as `response_format`, the adapter that parses the answer or None)."""
    if response_format is None or isinstance(response_format, Mapping):
        return response_format, None
    adapter = _adapter(response_format)
    if adapter is None:
        raise ConfigError(
            f"must be a pydantic model class (or a response format mapping), not "
            f"{type(response_format).__name__}",
            source="call argument",
            key="response_format",
        )
    schema = adapter.json_schema()
    strict = _strict(schema, schema)
    name = response_format.__name__
    return {
        "type": "json_schema",
        "json_schema": {"schema": strict, "name": name, "strict": True},
    }, (adapter)


def _strict(node: Any, root: dict[str, Any]) -> dict[str, Any]:
    """`node` (in place) as the API's strict mode wants it."""
    if not isinstance(node, dict):
        raise ConfigError(
            "the response_format class has a JSON schema the API cannot take in strict mode",
            source="call argument",
            key="response_format",
        )
    for key in ("$defs", "definitions"):
        for sub in (node.get(key) or {}).values():
            _strict(sub, root)
    if node.get("type") == "object":
        node.setdefault("additionalProperties", False)
    properties = node.get("properties")
    if isinstance(properties, dict):
        node["required"] = list(properties)
        node["properties"] = {name: _strict(sub, root) for name, sub in properties.items()}
    if isinstance(node.get("items"), dict):
        node["items"] = _strict(node["items"], root)
    if isinstance(node.get("anyOf"), list):
        node["anyOf"] = [_strict(sub, root) for sub in node["anyOf"]]
    all_of = node.get("allOf")
    if isinstance(all_of, list):
        if len(all_of) == 1:
            node.update(_strict(node.pop("allOf")[0], root))
        else:
            node["allOf"] = [_strict(sub, root) for sub in all_of]
    if "default" in node and node["default"] is None:
        del node["default"]  # nullable already; None adds nothing
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) > 1:  # a $ref with siblings: inline it
        target: Any = root
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        del node["$ref"]
        merged = {**copy.deepcopy(target), **node}
        node.clear()
        node.update(merged)
        return _strict(node, root)
    return node


def parsed_completion(
    completion: ChatCompletion, adapter: TypeAdapter[Any] | None, name: str = "value"
) -> ParsedChatCompletion[Any]:
    """The completion with each choice's content validated as `message.parsed`."""
    parsed = ParsedChatCompletion[Any].model_validate(completion.model_dump())
    parsed._request_id = completion._request_id
    parsed._pipeclient_request_id = completion._pipeclient_request_id
    if adapter is None:
        return parsed
    for choice in parsed.choices:
        message = choice.message
        if message.content is None or message.refusal:
            continue
        invalid = False
        try:
            message.parsed = adapter.validate_json(message.content)
        except (ValidationError, json.JSONDecodeError):
            invalid = True
        if invalid:
            raise APIResponseValidationError(
                f"the answer's content is not a valid {name} (request id {completion.request_id})",
                request_id=completion.request_id,
            )
    return parsed
