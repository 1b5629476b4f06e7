"""Routing by request class: which of a client's backends a request may go to.

`[routing]` (or `Client(routing=...)`) narrows the router's plan for one call, never
widens it: a user function first, then the first matching `[[routing.rules]]` entry, then
`sensitive = "local"`, which keeps a request in which the `[privacy] pii` detectors find
something on `local=True` backends, or refuses it. All of it runs before any network I/O;
telemetry learns the route taken (a rule's name), never what was found.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .._exceptions import ConfigError, RoutingError
from .._privacy.walk import strings_of
from .backends import Backend

if TYPE_CHECKING:
    from .._config.routing import RoutingConfig, RoutingRule
    from .._config.settings import DefaultSettings, TelemetrySettings
    from .._privacy.detectors import Redactor
    from .._privacy.known_secrets import KnownSecrets
    from .call import Call

__all__ = [
    "Decision",
    "RouteFunction",
    "RouteRequest",
    "Routing",
    "build_routing",
    "flagged",
    "matches",
    "rule_name",
]

RouteFunction = Callable[["RouteRequest"], "Sequence[str] | None"]  # Client(routing=f)
ARGUMENT = "Client(routing=...)"
SENSITIVE = "sensitive"  # the route of a request the detectors flagged
FUNCTION = "function"  # the route the user function chose
# The estimate of a request's input tokens: its text's characters / 4 (inline images,
# audio and files excepted), as the budget's estimate.
CHARS_PER_TOKEN = 4
_IMAGE_PARTS = frozenset({"image_url", "input_image"})


def _inline_data(text: str) -> bool:
    return text.startswith("data:") and ";base64," in text[:256]


class RouteRequest:
    """What a routing rule or function sees of a request (a copy of what is sent)."""

    __slots__ = ("_tokens", "body", "model", "operation")

    def __init__(self, operation: str, body: Mapping[str, Any]) -> None:
        self.operation = operation  # "chat", "embeddings", "responses", ...
        self.body = body  # the JSON body as it will be sent, parsed again from its bytes
        self.model = str(body.get("model", ""))
        self._tokens: int | None = None

    def __repr__(self) -> str:  # never the content
        return f"RouteRequest(operation={self.operation!r}, model={self.model!r})"

    @property
    def input_tokens(self) -> int:
        """An estimate of the input tokens: characters of text / 4."""
        if self._tokens is None:
            chars = sum(len(s) for s in strings_of(self.body) if not _inline_data(s))
            self._tokens = -(-chars // CHARS_PER_TOKEN)
        return self._tokens

    @property
    def tools(self) -> bool:
        """Whether the request offers the model tools (or legacy functions)."""
        return bool(self.body.get("tools") or self.body.get("functions"))

    @property
    def images(self) -> bool:
        """Whether the input holds an image part (chat `image_url`, Responses `input_image`)."""
        return _has_image(self.body.get("messages")) or _has_image(self.body.get("input"))


def _has_image(value: Any) -> bool:
    if isinstance(value, dict):
        if value.get("type") in _IMAGE_PARTS:
            return True
        return any(_has_image(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_has_image(item) for item in value)
    return False


class Decision(NamedTuple):
    """The backends a call may use (None: any) and the route telemetry shows."""

    allowed: frozenset[str] | None
    route: str | None


_ANY = Decision(None, None)


def matches(rule: RoutingRule, request: RouteRequest) -> bool:
    if rule.model is not None:
        models = [rule.model] if isinstance(rule.model, str) else rule.model
        if request.model not in models:
            return False
    if rule.tools is not None and rule.tools != request.tools:
        return False
    if rule.images is not None and rule.images != request.images:
        return False
    if rule.min_input_tokens is not None and request.input_tokens < rule.min_input_tokens:
        return False
    return rule.max_input_tokens is None or request.input_tokens <= rule.max_input_tokens


class Routing:
    """A client's routing: its function, rules and sensitive check, resolved to names."""

    def __init__(
        self,
        config: RoutingConfig,
        backends: Sequence[Backend],
        *,
        function: RouteFunction | None = None,
        redactor: Redactor | None = None,
        where: Callable[[str], str] = lambda key: ARGUMENT,
    ) -> None:
        self.names = frozenset(backend.name for backend in backends)
        self.local = frozenset(backend.name for backend in backends if backend.local)
        self.function = function
        self.redactor = redactor  # set: sensitive = "local"
        self.rules: list[tuple[str, RoutingRule, frozenset[str]]] = []
        for index, rule in enumerate(config.rules):
            key = f"routing.rules[{index}]"
            if rule.local:
                if not self.local:
                    raise ConfigError(
                        "routes to the local=True backends, and this client has none: mark "
                        "your own server pipeclient.Backend(..., local=True), or name backends",
                        source=where("rules"),
                        key=f"{key}.local",
                    )
                target = self.local
            else:
                unknown = sorted(set(rule.backends) - self.names)
                if unknown:
                    raise ConfigError(
                        f"names no backend of this client: {', '.join(unknown)} (its backends: "
                        f"{', '.join(sorted(self.names))})",
                        source=where("rules"),
                        key=f"{key}.backends",
                    )
                target = frozenset(rule.backends)
            self.rules.append((rule_name(rule, index), rule, target))

    def decide(self, call: Call) -> Decision:
        """The call's backends and route (also set on its record); a RoutingError when
        none may take it."""
        if call.method == "GET":  # listing models: no request content
            return _ANY
        sent = call.sent_json()  # a copy: the function may not change what is sent or scanned
        found = flagged(self.redactor, sent) if self.redactor is not None else None
        if self.function is not None:
            call.tracker.route = FUNCTION  # until it has answered: a refusal is its own
        request = RouteRequest(call.tracker.operation, sent if isinstance(sent, dict) else {})
        decision = self._chosen(request, call.request_id)
        call.tracker.route = decision.route
        if found is None:
            return decision
        call.tracker.route = SENSITIVE
        if not self.local:
            raise RoutingError(
                f"the request holds data the [privacy] detectors flag ({found}), and [routing] "
                f'sensitive = "local" keeps such requests on local=True backends, but none of '
                f"this client's backends is local: the call was not sent. Add your own server "
                f"as pipeclient.Backend(..., local=True), or leave the data out of the request "
                f"(request id {call.request_id})",
                request_id=call.request_id,
                route=SENSITIVE,
            )
        allowed = decision.allowed
        narrowed = self.local if allowed is None else (allowed & self.local) or self.local
        return Decision(narrowed, SENSITIVE)

    def _chosen(self, request: RouteRequest, request_id: str) -> Decision:
        if self.function is not None:
            names = self.function(request)
            if names is not None:
                return Decision(self._checked(names, request_id), FUNCTION)
        for name, rule, target in self.rules:
            if matches(rule, request):
                return Decision(target, name)
        return _ANY

    def _checked(self, names: Any, request_id: str) -> frozenset[str]:
        if not isinstance(names, list | tuple | set | frozenset) or not all(
            isinstance(name, str) for name in names
        ):
            raise ConfigError(
                f"the routing function must return a list of backend names or None, not "
                f"{type(names).__name__}",
                source=ARGUMENT,
            )
        chosen = frozenset(names)
        unknown = sorted(chosen - self.names)
        if unknown:
            raise ConfigError(
                f"the routing function returned {', '.join(map(repr, unknown))}, which is "
                f"not a backend of this client (its backends: {', '.join(sorted(self.names))})",
                source=ARGUMENT,
            )
        if not chosen:
            raise RoutingError(
                f"the routing function returned no backend: the call was not sent (request "
                f"id {request_id})",
                request_id=request_id,
                route=FUNCTION,
            )
        return chosen


def flagged(redactor: Redactor, sent: Any) -> str | None:
    """The first detector that finds something in what would be sent, or None."""
    for text in strings_of(sent):
        found = redactor.finds(text)
        if found is not None:
            return found
    return None


def rule_name(rule: RoutingRule, index: int) -> str:
    return rule.name or f"rules[{index}]"


def build_routing(
    settings: TelemetrySettings | DefaultSettings,
    argument: Any,
    backends: Sequence[Backend],
    secrets: KnownSecrets,
    *,
    rules: bool = True,
) -> Routing | None:
    """A client's routing from `[routing]` and `Client(routing=...)`; None when off.
    `rules=False` (a wrapped openai client, with one backend): the sensitive check only."""
    from .._config.settings import TelemetrySettings

    loaded = settings if isinstance(settings, TelemetrySettings) else None
    function: RouteFunction | None = None
    given: Mapping[str, Any] = {}
    if argument is not None:
        if callable(argument):
            function = argument
        else:
            given = _given(argument)
    if loaded is None and not given and function is None:
        return None
    from .._config.routing import RoutingConfig

    config = loaded.config.routing if loaded is not None else RoutingConfig()
    if given:
        config = _merged(config, given)
    if not rules:
        config = config.model_copy(update={"rules": []})
    if not config.enabled and function is None:
        return None

    def where(key: str) -> str:
        """Where `[routing] key` came from (the argument, the file, a variable)."""
        if key in given or loaded is None:
            return ARGUMENT
        from .._config.settings import where_value

        return where_value(("routing", key), loaded.sources)

    redactor = None
    if config.sensitive == "local":
        detectors = loaded.config.privacy.pii if loaded is not None else []
        if not detectors:
            raise ConfigError(
                '[routing] sensitive = "local" keeps requests in which the [privacy] pii '
                "detectors find something on local=True backends, and pii is empty: set it, "
                'e.g. [privacy] pii = ["email", "secret", "credit_card", "phone", "ip"]',
                source=where("sensitive"),
                key="privacy.pii",
            )
        from .._privacy.detectors import Redactor

        redactor = Redactor(detectors, secrets)
    return Routing(config, backends, function=function, redactor=redactor, where=where)


def _given(argument: Any) -> Mapping[str, Any]:
    """The keys `Client(routing=...)` sets: a dict's, or the fields given to a model."""
    from pydantic import BaseModel

    if isinstance(argument, BaseModel):
        return {name: getattr(argument, name) for name in argument.model_fields_set}
    if isinstance(argument, Mapping):
        return dict(argument)
    raise ConfigError(
        "must be a pipeclient.RoutingConfig, a dict of [routing] keys, or a function taking "
        f"a RouteRequest and returning backend names or None (got {type(argument).__name__})",
        source=ARGUMENT,
    )


def _merged(config: RoutingConfig, given: Mapping[str, Any]) -> RoutingConfig:
    """The file's [routing] with the argument's keys over it."""
    from pydantic import ValidationError

    from .._config.routing import RoutingConfig

    values = {**config.model_dump(), **given}
    problem: ConfigError | None = None
    try:
        return RoutingConfig.model_validate(values)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        reason = str(error["msg"]).removeprefix("Value error, ")
        problem = ConfigError(reason, source=ARGUMENT, key=f"routing{path}")
    raise problem
