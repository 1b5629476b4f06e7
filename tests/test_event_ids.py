"""PostHog's deterministic event ids, written without a `UUID` object, are uuid5's."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeclient._sinks import posthog


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",))))
def test_an_event_id_is_uuid5_of_its_key(key: str) -> None:
    assert posthog.event_uuid(key) == str(uuid.uuid5(posthog._UUID_NAMESPACE, key))
