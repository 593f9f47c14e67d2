"""When an upload's event stream ends: at its last state, or after its hand-off's outcome."""

from __future__ import annotations

from typing import Any

import pytest

from chunkd.server.events import _last, _settled
from chunkd.uploads.events import Event

PENDING = {"state": "pending"}


@pytest.mark.parametrize(
    ("status", "handoffs", "settled"),
    [
        ({"state": "receiving"}, False, False),
        ({"state": "verifying"}, True, False),
        ({"state": "complete", "handoff": None}, False, True),
        ({"state": "complete", "handoff": PENDING}, True, False),
        ({"state": "complete", "handoff": {"state": "delivered"}}, True, True),
        ({"state": "complete", "handoff": {"state": "failed"}}, True, True),
        ({"state": "failed"}, True, True),
        ({"state": "aborted"}, False, True),
        ({"state": "expired"}, False, True),
    ],
)
def test_a_stream_starts_already_over_only_for_settled_uploads(
    status: dict[str, Any], handoffs: bool, settled: bool
) -> None:
    assert _settled(status, handoffs) is settled


@pytest.mark.parametrize(
    ("kind", "data", "handoffs", "last"),
    [
        ("progress", {}, False, False),
        ("completed", {}, False, True),
        ("completed", {}, True, False),  # the hand-off's outcome is still to come
        ("handoff", {"state": "pending"}, True, False),  # a retry is due
        ("handoff", {"state": "delivered"}, True, True),
        ("handoff", {"state": "failed"}, True, True),
        ("failed", {}, True, True),
        ("expired", {}, True, True),
    ],
)
def test_the_last_event_of_a_stream(
    kind: str, data: dict[str, Any], handoffs: bool, last: bool
) -> None:
    assert _last(Event(kind, "u", None, data), handoffs) is last
