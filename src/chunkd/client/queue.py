"""The offline-first queue: files recorded without a network, uploaded when the server is back.

Each item moves ``recorded → uploading → uploaded → processing → completed | failed``. An item
is either a reference to the caller's file or a copy in the queue's own directory (for recorders
that reuse their buffer). Uploads resume through the client's resume state, so an item cut off
in ``uploading`` continues where it stopped. After the upload, an item follows the server's event
stream: ``processing`` while the server verifies the file and hands it to its processing
pipeline, ``completed`` once the pipeline has it (at once, when the server has no pipeline),
``failed`` if the server refuses the file or the hand-off fails for good.

This module is the queue's store (a SQLite file, no network); :mod:`chunkd.client.syncing`
moves its items with a client.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chunkd.client._state import default_data_dir

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
