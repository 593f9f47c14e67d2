"""Resume state: which server session holds which local file, in a small SQLite file.

Keyed by server URL, protocol and the file's resolved path; the row also holds the file's
fingerprint and whole-file sha256. A row whose fingerprint no longer matches the file is
stale: the caller starts a new session rather than add changed bytes to an old one.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import asdict
from pathlib import Path

from chunkd.client._effects import Session
from chunkd.client._files import Fingerprint

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    server TEXT NOT NULL,
    protocol TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    edges TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    upload_id TEXT,
    url TEXT,
    parts_url TEXT,
    complete_url TEXT,
    part_size INTEGER,
    updated_at REAL NOT NULL,
    PRIMARY KEY (server, protocol, path)
)
"""


def default_data_dir() -> Path:
    """``$CHUNKD_CLIENT_DIR``, else the platform's per-user data directory."""
    configured = os.environ.get("CHUNKD_CLIENT_DIR")
    if configured:
        return Path(configured)
    import platformdirs

    return Path(platformdirs.user_data_dir("chunkd", appauthor=False))


class ResumeState:
    """Thread-safe; one connection, short transactions."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_data_dir() / "resume.sqlite3"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def lookup(self, server: str, protocol: str, file: Fingerprint) -> tuple[str, Session | None]:
        """``(sha256, session)`` remembered for this file, or ``("", None)`` if it changed."""
        with self._lock:
            row = self._db.execute(
                "SELECT size, mtime_ns, edges, sha256, upload_id, url, parts_url, complete_url,"
                " part_size FROM sessions WHERE server = ? AND protocol = ? AND path = ?",
                (server, protocol, file.path),
            ).fetchone()
        if row is None or tuple(row[:3]) != (file.size, file.mtime_ns, file.edges):
            return "", None
        if row[4] is None:
            return row[3], None
        if protocol == "tus":
            return row[3], Session("tus", row[4], row[5], part_size=row[8])
        return row[3], Session("rest", row[4], row[5], row[6], row[7], row[8])

    def remember(
        self, server: str, protocol: str, file: Fingerprint, sha256: str, session: Session | None
    ) -> None:
        fields = asdict(session) if session is not None else {}
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    server, protocol, file.path, file.size, file.mtime_ns, file.edges, sha256,
                    fields.get("id"), fields.get("url"), fields.get("parts_url"),
                    fields.get("complete_url"), fields.get("part_size"), time.time(),
                ),
            )  # fmt: skip

    def forget(self, server: str, protocol: str, path: str) -> None:
        with self._lock, self._db:
            self._db.execute(
                "DELETE FROM sessions WHERE server = ? AND protocol = ? AND path = ?",
                (server, protocol, path),
            )
