"""The package's shape (docs/architecture.md): layers, and no import cycle.

Every import counts, those inside functions and under TYPE_CHECKING included: a lazy
import is still a dependency, and a cycle through one is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pipeclient"

# Lowest first. A module may import its own layer and the layers below, never above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("pipeclient._version", "pipeclient._exceptions", "pipeclient._binary", "pipeclient.types"),
    ("pipeclient._config", "pipeclient.config"),
    ("pipeclient._privacy",),
    ("pipeclient._audit", "pipeclient._store"),
    ("pipeclient._telemetry",),
    ("pipeclient._sinks",),
    ("pipeclient._builder",),
    ("pipeclient._client",),
    ("pipeclient._cli", "pipeclient.testing", "pipeclient.__main__", "pipeclient"),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("pipeclient"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("pipeclient"):
                target = node.module
            else:
                continue
            found.add(target)
            for alias in node.names:  # `from . import module`
                if _path_of(f"{target}.{alias.name}") is not None:
                    found.add(f"{target}.{alias.name}")
    return found


def _path_of(name: str) -> Path | None:
    relative = Path(*name.split(".")[1:])
    for candidate in (PACKAGE / relative.with_suffix(".py"), PACKAGE / relative / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        # A package's own __init__ is not a dependency of its modules: importing a
        # submodule runs it, but our __init__ files hold docstrings only (checked below).
        graph[name] = {target for target in _imports(path, name) if target != name}
    return graph


def _layer(name: str) -> int:
    best, layer = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = name == prefix or name.startswith(prefix + ".")
            if matches and len(prefix) > best:
                best, layer = len(prefix), index
    if layer < 0:
        raise AssertionError(f"{name} is in no layer: add it to LAYERS and docs/architecture.md")
    return layer


def test_every_module_has_a_layer() -> None:
    for name in _graph():
        _layer(name)


def test_no_import_goes_up_a_layer() -> None:
    upward = sorted(
        f"{source} -> {target}"
        for source, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(source)
    )
    assert upward == []


def test_no_import_cycle() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


def test_package_inits_import_nothing_heavy() -> None:
    """Subpackage __init__ files are docstrings: importing `pipeclient._sinks.posthog`
    must not load every sibling."""
    for init in PACKAGE.rglob("__init__.py"):
        if init.parent in (PACKAGE, PACKAGE / "testing"):
            continue
        body = ast.parse(init.read_text()).body
        assert all(isinstance(node, ast.Expr) for node in body), init


@pytest.mark.parametrize(
    "forbidden", ["pipeclient._client", "pipeclient._config.settings", "pipeclient._builder"]
)
def test_sinks_know_nothing_of_the_client_or_the_settings(forbidden: str) -> None:
    graph = _graph()
    reached = sorted(
        f"{source} -> {target}"
        for source, targets in graph.items()
        if source.startswith(("pipeclient._sinks", "pipeclient._telemetry"))
        for target in targets
        if target == forbidden or target.startswith(forbidden + ".")
    )
    assert reached == []
