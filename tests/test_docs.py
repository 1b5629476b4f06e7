"""The documentation stands alone: a reader of the repository can follow every reference."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_pages_cite_nothing_a_reader_cannot_see(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"\bDESIGN\b", text), "cites the internal design contract"
    assert not re.search(r"\bissues?\b", text, re.IGNORECASE), "cites an issue"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_local_links_resolve(page: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue
        path_text, _, anchor = target.partition("#")
        linked = (page.parent / path_text).resolve() if path_text else page
        assert linked.exists(), target
        if anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.M)
            assert anchor in {_slug(heading) for heading in headings}, target


def test_readme_explains_the_managed_gateway() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    privacy = text[text.index("## Privacy promise") : text.index("## Documentation")]
    for needle in [
        "managed gateway",
        'kind="gateway"',
        "PIPECLIENT_GATEWAY_URL",
        "{PIPECLIENT_GATEWAY_URL}/telemetry",
        "pipeclient.gateway.v1",
        "Never prompts, completions",
        "no_log=True",
        "GatewayTelemetryRequiredError",
    ]:
        assert needle in privacy, needle
