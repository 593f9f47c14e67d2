"""The offline-first queue: files recorded without a network, uploaded when the server is back.

Each item moves ``recorded → uploading → uploaded → processing → completed | failed``. An item
is either a reference to the caller's file or a copy in the queue's own directory (for recorders
that reuse their buffer). Uploads resume through the client's resume state, so an item cut off
in ``uploading`` continues where it stopped. After the upload, an item follows the server's event
stream: ``processing`` while the server verifies the file and hands it to its processing
pipeline, ``completed`` once the pipeline has it (at once, when the server has no pipeline),
``failed`` if the server refuses the file or the hand-off fails for good.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from chunkd.client._errors import ChunkdError, RetriesExhausted
from chunkd.client._state import default_data_dir
from chunkd.client._sync import Client

STATUSES = ("recorded", "uploading", "uploaded", "processing", "completed", "failed")
PENDING = STATUSES[:4]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    copied INTEGER NOT NULL,
    size INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    upload_id TEXT,
    location TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
)
"""


@dataclass(frozen=True)
class Item:
    id: int
    path: str
    copied: bool
    size: int
    metadata: dict[str, str]
    status: str
    error: str | None
    upload_id: str | None
    location: str | None
    created_at: float
    updated_at: float

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class UploadQueue:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_data_dir() / "queue"
        self.files = self.directory / "files"
        self.files.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.directory / "queue.sqlite3", timeout=30)
        with self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(self, path: Path, metadata: dict[str, str], copy: bool = False) -> Item:
        path = path.resolve()
        now = time.time()
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO items (path, copied, size, metadata, status, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, 'recorded', ?, ?)",
                (str(path), int(copy), path.stat().st_size, json.dumps(metadata), now, now),
            )
            item_id = cursor.lastrowid
            assert item_id is not None
            if copy:
                # the copy keeps the file's name (the server sees it) in a folder of its own
                target = self.files / str(item_id) / path.name
                target.parent.mkdir()
                shutil.copy2(path, target)
                self._db.execute("UPDATE items SET path = ? WHERE id = ?", (str(target), item_id))
        return self.get(item_id)

    def get(self, item_id: int) -> Item:
        return self.items(item_id=item_id)[0]

    def items(self, status: str | None = None, item_id: int | None = None) -> list[Item]:
        query = "SELECT * FROM items WHERE 1=1"
        args: tuple[object, ...] = ()
        if status is not None:
            query, args = query + " AND status = ?", (status,)
        if item_id is not None:
            query, args = query + " AND id = ?", (*args, item_id)
        rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [
            Item(row[0], row[1], bool(row[2]), row[3], json.loads(row[4]), *row[5:]) for row in rows
        ]

    def pending(self) -> list[Item]:
        return [item for item in self.items() if item.status in PENDING]

    def update(self, item: Item, status: str, **fields: str | None) -> Item:
        assignments = "".join(f", {name} = ?" for name in fields)
        with self._db:
            self._db.execute(
                f"UPDATE items SET status = ?, updated_at = ?{assignments} WHERE id = ?",
                (status, time.time(), *fields.values(), item.id),
            )
        return self.get(item.id)

    def stats(self) -> dict[str, Any]:
        counts = dict.fromkeys(STATUSES, 0)
        local = copies = 0
        for item in self.items():
            counts[item.status] += 1
            path = Path(item.path)
            if path.exists():
                local += path.stat().st_size
                copies += path.stat().st_size if item.copied else 0
        return {"items": counts, "local_bytes": local, "copied_bytes": copies,
                "directory": str(self.directory)}  # fmt: skip

    def remove_file(self, item: Item) -> None:
        path = Path(item.path)
        path.unlink(missing_ok=True)
        if item.copied and path.parent.parent == self.files:
            shutil.rmtree(path.parent, ignore_errors=True)

    def clean_failed(self, older_than: float) -> int:
        """Forget failed items (and their copies) untouched for ``older_than`` seconds."""
        cutoff = time.time() - older_than
        old = [item for item in self.items("failed") if item.updated_at < cutoff]
        for item in old:
            if item.copied:
                self.remove_file(item)
            with self._db:
                self._db.execute("DELETE FROM items WHERE id = ?", (item.id,))
        return len(old)


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
