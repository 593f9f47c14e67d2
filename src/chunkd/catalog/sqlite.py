"""The default catalog: one SQLite database in WAL mode, beside the data it describes.

Every write is a single statement in autocommit mode, so each is its own transaction; with
``durable=True`` the WAL is synced on every commit (``synchronous=FULL``), which is what lets
the service acknowledge an offset only once its record survives a power cut.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiosqlite

from chunkd.catalog import codec, migrations
from chunkd.catalog.base import Activity, Catalog, Handoff, Totals, Usage, check_fields, settlement
from chunkd.catalog.sql import Params, activity_of, activity_query, upload_filters
from chunkd.uploads.models import Part, Upload, UploadState

_COLUMN_LIST = ", ".join(f'"{c}"' for c in codec.COLUMNS)
_HANDOFF = '"upload_id", "state", "attempts", "next_at", "last_error", "delivered_at"'


def _mapping(row: Any) -> Mapping[str, Any]:
    mapping: Mapping[str, Any] = row  # sqlite3.Row reads like a mapping by column name
    return mapping


_ACTIVITY = activity_query(":since")


class SqliteCatalog(Catalog):
    def __init__(self, path: Path, *, durable: bool = True) -> None:
        self._path = path
        self._durable = durable
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the catalog is not open")
        return self._db

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self._path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'NORMAL'}")
        await self._db.execute("PRAGMA busy_timeout=10000")
        await self._db.execute("PRAGMA foreign_keys=ON")
        await self._migrate()

    async def _migrate(self) -> None:
        async with self.db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        current = int(row[0]) if row else 0
        for version, sql in migrations.load("sqlite"):
            if version <= current:
                continue
            await self.db.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version={version};\nCOMMIT;"
            )

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def ping(self) -> None:
        await self.db.execute("SELECT 1")

    async def insert(self, upload: Upload) -> None:
        row = codec.encode({name: getattr(upload, name) for name in codec.COLUMNS})
        marks = ", ".join("?" for _ in codec.COLUMNS)
        await self.db.execute(
            f"INSERT INTO uploads ({_COLUMN_LIST}) VALUES ({marks})", tuple(row.values())
        )

    async def get(self, upload_id: str) -> Upload | None:
        rows = await self.db.execute_fetchall(
            f"SELECT {_COLUMN_LIST} FROM uploads WHERE id = ?", (upload_id,)
        )
        for row in rows:
            return codec.decode(_mapping(row))
        return None

    async def compare_and_set(
        self, upload_id: str, expect: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> Upload | None:
        check_fields(expect)
        check_fields(changes)
        new = codec.encode(changes)
        old = codec.encode(expect)
        assignments = ", ".join(f'"{name}" = ?' for name in new)
        conditions = "".join(f' AND "{name}" IS ?' for name in old)
        rows = await self.db.execute_fetchall(
            f"UPDATE uploads SET {assignments} WHERE id = ?{conditions} RETURNING {_COLUMN_LIST}",
            (*new.values(), upload_id, *old.values()),
        )
        for row in rows:
            return codec.decode(_mapping(row))
        return None

    async def delete(self, upload_id: str) -> bool:
        rows = await self.db.execute_fetchall(
            "DELETE FROM uploads WHERE id = ? RETURNING id", (upload_id,)
        )
        return len(list(rows)) > 0

    async def add_part(self, upload_id: str, part: Part) -> bool:
        try:
            rows = await self.db.execute_fetchall(
                'INSERT INTO parts ("upload_id", "index", "size", "digest") VALUES (?, ?, ?, ?) '
                "ON CONFLICT DO NOTHING RETURNING 1",
                (upload_id, part.index, part.size, part.digest),
            )
        except sqlite3.IntegrityError:
            raise KeyError(f"upload {upload_id} does not exist") from None
        return len(list(rows)) > 0

    async def get_part(self, upload_id: str, index: int) -> Part | None:
        rows = await self.db.execute_fetchall(
            'SELECT "index", "size", "digest" FROM parts WHERE upload_id = ? AND "index" = ?',
            (upload_id, index),
        )
        for row in rows:
            return Part(row[0], row[1], row[2])
        return None

    async def list_parts(self, upload_id: str) -> list[Part]:
        rows = await self.db.execute_fetchall(
            'SELECT "index", "size", "digest" FROM parts WHERE upload_id = ? ORDER BY "index"',
            (upload_id,),
        )
        return [Part(row[0], row[1], row[2]) for row in rows]

    async def list_expired(self, now: float, limit: int) -> list[Upload]:
        rows = await self.db.execute_fetchall(
            f"SELECT {_COLUMN_LIST} FROM uploads WHERE expires_at < ? ORDER BY expires_at LIMIT ?",
            (now, limit),
        )
        return [codec.decode(_mapping(row)) for row in rows]

    async def usage(self, owner: str | None) -> Usage:
        rows = await self.db.execute_fetchall(
            'SELECT "state", COUNT(*), COALESCE(SUM(COALESCE("length", "offset")), 0) '
            'FROM uploads WHERE "owner" IS ? AND "state" IN (?, ?, ?) GROUP BY "state"',
            (owner, "receiving", "verifying", "complete"),
        )
        totals = {row[0]: (int(row[1]), int(row[2])) for row in rows}
        receiving, verifying = totals.get("receiving", (0, 0)), totals.get("verifying", (0, 0))
        return Usage(
            open_uploads=receiving[0] + verifying[0],
            open_bytes=receiving[1] + verifying[1],
            stored_bytes=totals.get("complete", (0, 0))[1],
        )

    async def claim_nonce(self, nonce: str, expires_at: float) -> bool:
        rows = await self.db.execute_fetchall(
            'INSERT INTO nonces ("nonce", "expires_at") VALUES (?, ?) '
            "ON CONFLICT DO NOTHING RETURNING 1",
            (nonce, expires_at),
        )
        return len(list(rows)) > 0

    async def purge_nonces(self, now: float) -> int:
        rows = await self.db.execute_fetchall(
            'DELETE FROM nonces WHERE "expires_at" < ? RETURNING 1', (now,)
        )
        return len(list(rows))

    async def list_uploads(
        self,
        *,
        owner: str | None = None,
        states: frozenset[UploadState] | None = None,
        updated_before: float | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[Upload]:
        params = Params("qmark")
        where = upload_filters(
            params, owner=owner, states=states, updated_before=updated_before, after=after
        )
        rows = await self.db.execute_fetchall(
            f'SELECT {_COLUMN_LIST} FROM uploads WHERE {where} ORDER BY "id" LIMIT {params(limit)}',
            params.values,
        )
        return [codec.decode(_mapping(row)) for row in rows]

    async def totals(self) -> list[Totals]:
        rows = await self.db.execute_fetchall(
            'SELECT "owner", "state", COUNT(*), COALESCE(SUM(COALESCE("length", "offset")), 0) '
            'FROM uploads GROUP BY "owner", "state" ORDER BY "owner", "state"'
        )
        return [Totals(row[0], UploadState(row[1]), int(row[2]), int(row[3])) for row in rows]

    async def activity(self, since: float) -> Activity:
        rows = await self.db.execute_fetchall(_ACTIVITY, {"since": since})
        return activity_of(next(iter(rows)))

    async def get_handoff(self, upload_id: str) -> Handoff | None:
        rows = await self.db.execute_fetchall(
            f"SELECT {_HANDOFF} FROM handoffs WHERE upload_id = ?", (upload_id,)
        )
        for row in rows:
            return Handoff(*row)
        return None

    async def claim_handoffs(self, now: float, lease: float, limit: int) -> list[Handoff]:
        rows = await self.db.execute_fetchall(
            'UPDATE handoffs SET "claimed_until" = ?, "attempts" = "attempts" + 1 '
            'WHERE "upload_id" IN (SELECT "upload_id" FROM handoffs WHERE "state" = ? '
            'AND "next_at" <= ? AND "claimed_until" <= ? ORDER BY "next_at" LIMIT ?) '
            f"RETURNING {_HANDOFF}",
            (now + lease, "pending", now, now, limit),
        )
        return [Handoff(*row) for row in rows]

    async def settle_handoff(
        self,
        upload_id: str,
        *,
        delivered: bool,
        now: float,
        next_at: float | None = None,
        error: str | None = None,
    ) -> None:
        state, due = settlement(delivered, now, next_at)
        await self.db.execute(
            'UPDATE handoffs SET "state" = ?, "next_at" = ?, "claimed_until" = 0, '
            '"last_error" = ?, "delivered_at" = ? WHERE "upload_id" = ?',
            (state, due, error, now if delivered else None, upload_id),
        )

    async def list_by_state(self, states: frozenset[UploadState], limit: int) -> list[Upload]:
        marks = ", ".join("?" for _ in states)
        rows = await self.db.execute_fetchall(
            f"SELECT {_COLUMN_LIST} FROM uploads WHERE state IN ({marks}) "
            "ORDER BY created_at LIMIT ?",
            (*sorted(str(s) for s in states), limit),
        )
        return [codec.decode(_mapping(row)) for row in rows]
