"""Syncing the offline-first queue (:mod:`chunkd.client.queue`) with a server: each pending
item is uploaded, then followed through the upload's event stream until the server's
processing has it (``completed``) or refused it (``failed``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from chunkd.client._errors import ChunkdError, RetriesExhausted
from chunkd.client._sync import Client
from chunkd.client.queue import Item, UploadQueue


@dataclass
class SyncRound:
    completed: int = 0
    failed: int = 0
    unreachable: bool = False  # stopped early: the server could not be reached
    waiting: int = 0  # items still pending (processing on the server, or not reached)
    waited: bool = False  # the round already waited for the server's events


def sync_round(
    queue: UploadQueue,
    client: Client,
    *,
    remove_after_upload: bool = False,
    on_change: Callable[[Item], None] | None = None,
    wait: float = 0.0,
) -> SyncRound:
    """Try every pending item once; stop at the first sign that the server is unreachable.

    An item the server is still processing is followed through the upload's event stream for
    up to ``wait`` seconds in all (shared by the round), so it moves on as soon as it is done.
    """
    report = SyncRound()
    deadline = time.monotonic() + wait

    def move(item: Item, status: str, **fields: str | None) -> Item:
        item = queue.update(item, status, **fields)
        if on_change is not None:
            on_change(item)
        return item

    for item in queue.pending():
        try:
            if item.status in ("recorded", "uploading"):
                if not Path(item.path).is_file():
                    move(item, "failed", error=f"the file {item.path} is gone")
                    report.failed += 1
                    continue
                if item.status == "recorded":
                    item = move(item, "uploading")
                result = client.upload(item.path, metadata=item.metadata)
                item = move(item, "uploaded", upload_id=result.id, location=result.location,
                            error=None)  # fmt: skip
            left = deadline - time.monotonic()
            item = _follow(client, item, move, left)
            report.waited |= left > 0 and item.status == "processing"  # it was followed
        except RetriesExhausted as error:
            report.unreachable = True
            queue.update(item, item.status, error=str(error))
            break
        except (ChunkdError, httpx.HTTPError) as error:
            move(item, "failed", error=str(error))
            report.failed += 1
            continue
        if item.status == "completed":
            report.completed += 1
            if remove_after_upload:
                queue.remove_file(item)
    report.waiting = len(queue.pending())
    return report


_NEWS = frozenset({"completed", "failed", "aborted", "expired", "handoff"})


def _follow(client: Client, item: Item, move: Callable[..., Item], wait: float) -> Item:
    """Move the item along by the upload's state on the server; while the server is still
    processing it, wait up to ``wait`` seconds for its next event and look again."""
    verdict, error = _verdict(client, item)
    if verdict == "processing" and wait > 0:
        if item.status != "processing":
            item = move(item, "processing")
        _await_news(client, item, wait)
        verdict, error = _verdict(client, item)
    if verdict == "processing":
        return item if item.status == "processing" else move(item, "processing")
    return move(item, verdict, error=error)


def _verdict(client: Client, item: Item) -> tuple[str, str | None]:
    """``(status, error)`` for the item, from the upload's state and its hand-off."""
    try:
        answer = client.http.get(f"{client.options.server}/uploads/{item.upload_id}")
    except httpx.TransportError as error:
        raise RetriesExhausted(1, str(error), unreachable=True) from None
    if answer.status_code >= 500 or answer.status_code == 429:
        raise RetriesExhausted(1, f"HTTP {answer.status_code}")
    if answer.status_code != 200:
        return "failed", f"the server answers {answer.status_code} for it"
    status = answer.json()
    state, handoff = status.get("state"), status.get("handoff")
    if state == "complete":
        if handoff is None or handoff.get("state") == "delivered":
            return "completed", None
        if handoff.get("state") == "failed":
            return "failed", f"the hand-off to processing failed: {handoff.get('last_error')}"
        return "processing", None
    if state == "verifying":
        return "processing", None
    return "failed", f"the server says {state}: {status.get('error')}"


def _await_news(client: Client, item: Item, wait: float) -> None:
    """Read the upload's event stream until an event that may change its state, or ``wait``."""
    url = f"{client.options.server}/uploads/{item.upload_id}/events"
    deadline = time.monotonic() + wait
    try:
        with client.http.stream("GET", url, timeout=httpx.Timeout(wait, connect=5.0)) as answer:
            if answer.status_code != 200:
                return
            for line in answer.iter_lines():
                if line.startswith("event:") and line[6:].strip() in _NEWS:
                    return
                if time.monotonic() >= deadline:
                    return
    except httpx.TransportError:  # a timeout, or the server went away: look again later
        return
