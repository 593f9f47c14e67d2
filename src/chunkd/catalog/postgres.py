"""The catalog for many server instances: PostgreSQL, through an asyncpg connection pool.

Every write is one statement in autocommit mode, so each is its own transaction, as in SQLite:

- :meth:`PostgresCatalog.compare_and_set` is a single ``UPDATE … WHERE id = $n AND <field>
  IS NOT DISTINCT FROM $m … RETURNING *``. Under READ COMMITTED, a second UPDATE of the same
  row waits for the first to commit and then re-checks its WHERE clause against the new row,
  so of two racing instances exactly one sees its expectations hold;
- :meth:`PostgresCatalog.add_part` and :meth:`PostgresCatalog.claim_nonce` are ``INSERT … ON
  CONFLICT DO NOTHING RETURNING`` — a row back means "this call recorded it";
- :meth:`PostgresCatalog.usage` is one aggregate over the owner's rows.

The schema is brought up to date by :meth:`PostgresCatalog.open` from the numbered files in
``migrations/postgres`` (the same versions, with the same meaning, as ``migrations/sqlite``),
recorded in a ``schema_version`` table. Migrating happens in one transaction holding a
transaction-level advisory lock, so when several instances start at once, one migrates and
the others wait for it, then find nothing left to do.

Values are encoded by :mod:`chunkd.catalog.codec`, shared with SQLite: JSON-valued fields are
TEXT columns holding the codec's canonical JSON (see ``0001_initial.sql`` for why not jsonb).

asyncpg prepares statements per connection: through PgBouncer, use session pooling (or
PgBouncer >= 1.21 with ``max_prepared_statements``), not plain transaction pooling.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from chunkd.catalog import codec, migrations
from chunkd.catalog.base import Activity, Catalog, Handoff, Totals, Usage, check_fields, settlement
from chunkd.catalog.sql import Params, activity_of, activity_query, upload_filters
from chunkd.uploads.models import OPEN_STATES, Part, Upload, UploadState

_COLUMN_LIST = ", ".join(f'"{c}"' for c in codec.COLUMNS)
_OPEN_STATES = sorted(str(state) for state in OPEN_STATES)
_HANDOFF = '"upload_id", "state", "attempts", "next_at", "last_error", "delivered_at"'


def advisory_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name`` (PostgreSQL's ``bigint`` lock space)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8, person=b"chunkd").digest()
    return int.from_bytes(digest, "big", signed=True)


MIGRATION_LOCK = advisory_key("catalog:migrate")
"""The advisory lock held while migrating, so concurrent starts migrate once."""


def _mapping(row: asyncpg.Record) -> Mapping[str, Any]:
    mapping: Mapping[str, Any] = row  # type: ignore[assignment]  # a Record reads by name
    return mapping


_ACTIVITY = activity_query("$1")


class PostgresCatalog(Catalog):
    """Upload records in PostgreSQL.

    ``dsn`` is a libpq-style URL (``postgresql://user:password@host:5432/db``); ``pool_size``
    bounds the connections this instance opens (each request uses one for one statement at a
    time). With ``durable=False`` commits do not wait for the WAL flush
    (``synchronous_commit=off``), the counterpart of SQLite's ``synchronous=NORMAL``.
    """

    def __init__(self, dsn: str, *, pool_size: int = 10, durable: bool = True) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self._dsn = dsn
        self._pool_size = pool_size
        self._durable = durable
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the catalog is not open")
        return self._pool

    async def open(self) -> None:
        settings = {"application_name": "chunkd"}
        if not self._durable:
            settings["synchronous_commit"] = "off"
        pool = await asyncpg.create_pool(
            self._dsn,
            min_size=min(2, self._pool_size),
            max_size=self._pool_size,
            server_settings=settings,
        )
        try:
            async with pool.acquire() as connection:
                await migrate(connection)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    async def insert(self, upload: Upload) -> None:
        row = codec.encode({name: getattr(upload, name) for name in codec.COLUMNS})
        marks = ", ".join(f"${n}" for n in range(1, len(row) + 1))
        await self.pool.execute(
            f"INSERT INTO uploads ({_COLUMN_LIST}) VALUES ({marks})", *row.values()
        )

    async def get(self, upload_id: str) -> Upload | None:
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMN_LIST} FROM uploads WHERE id = $1", upload_id
        )
        return None if row is None else codec.decode(_mapping(row))

    async def compare_and_set(
        self, upload_id: str, expect: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> Upload | None:
        check_fields(expect)
        check_fields(changes)
        new = codec.encode(changes)
        old = codec.encode(expect)
        args: list[Any] = [upload_id]
        conditions = ""
        for name, value in old.items():
            args.append(value)
            conditions += f' AND "{name}" IS NOT DISTINCT FROM ${len(args)}'
        if not new:  # nothing to change: the record, if the expectations hold
            query = f"SELECT {_COLUMN_LIST} FROM uploads WHERE id = $1{conditions}"
        else:
            assignments = []
            for name, value in new.items():
                args.append(value)
                assignments.append(f'"{name}" = ${len(args)}')
            query = (
                f"UPDATE uploads SET {', '.join(assignments)} WHERE id = $1{conditions} "
                f"RETURNING {_COLUMN_LIST}"
            )
        row = await self.pool.fetchrow(query, *args)
        return None if row is None else codec.decode(_mapping(row))

    async def delete(self, upload_id: str) -> bool:
        deleted = await self.pool.fetchval(
            "DELETE FROM uploads WHERE id = $1 RETURNING id", upload_id
        )
        return deleted is not None

    async def add_part(self, upload_id: str, part: Part) -> bool:
        try:
            added = await self.pool.fetchval(
                'INSERT INTO parts ("upload_id", "index", "size", "digest") '
                "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1",
                upload_id,
                part.index,
                part.size,
                part.digest,
            )
        except asyncpg.ForeignKeyViolationError:
            raise KeyError(f"upload {upload_id} does not exist") from None
        return added is not None

    async def get_part(self, upload_id: str, index: int) -> Part | None:
        row = await self.pool.fetchrow(
            'SELECT "index", "size", "digest" FROM parts WHERE upload_id = $1 AND "index" = $2',
            upload_id,
            index,
        )
        return None if row is None else Part(row[0], row[1], row[2])

    async def list_parts(self, upload_id: str) -> list[Part]:
        rows = await self.pool.fetch(
            'SELECT "index", "size", "digest" FROM parts WHERE upload_id = $1 ORDER BY "index"',
            upload_id,
        )
        return [Part(row[0], row[1], row[2]) for row in rows]

    async def list_expired(self, now: float, limit: int) -> list[Upload]:
        rows = await self.pool.fetch(
            f"SELECT {_COLUMN_LIST} FROM uploads WHERE expires_at < $1 "
            "ORDER BY expires_at LIMIT $2",
            now,
            limit,
        )
        return [codec.decode(_mapping(row)) for row in rows]

    async def usage(self, owner: str | None) -> Usage:
        # Two spellings of the owner test rather than IS NOT DISTINCT FROM, which no index serves.
        who = '"owner" IS NULL AND $1::text IS NULL' if owner is None else '"owner" = $1'
        row = await self.pool.fetchrow(
            'SELECT COUNT(*) FILTER (WHERE "state" = ANY($2::text[])), '
            'COALESCE(SUM(COALESCE("length", "offset")) FILTER (WHERE "state" = ANY($2::text[])), '
            "0), "
            'COALESCE(SUM(COALESCE("length", "offset")) FILTER (WHERE "state" = $3), 0) '
            f'FROM uploads WHERE {who} AND ("state" = ANY($2::text[]) OR "state" = $3)',
            owner,
            _OPEN_STATES,
            str(UploadState.COMPLETE),
        )
        assert row is not None  # an aggregate without GROUP BY always has its one row
        return Usage(open_uploads=int(row[0]), open_bytes=int(row[1]), stored_bytes=int(row[2]))

    async def claim_nonce(self, nonce: str, expires_at: float) -> bool:
        claimed = await self.pool.fetchval(
            'INSERT INTO nonces ("nonce", "expires_at") VALUES ($1, $2) '
            "ON CONFLICT DO NOTHING RETURNING 1",
            nonce,
            expires_at,
        )
        return claimed is not None

    async def purge_nonces(self, now: float) -> int:
        purged = await self.pool.fetchval(
            "WITH gone AS (DELETE FROM nonces WHERE expires_at < $1 RETURNING 1) "
            "SELECT COUNT(*) FROM gone",
            now,
        )
        return int(purged)

    async def list_uploads(
        self,
        *,
        owner: str | None = None,
        states: frozenset[UploadState] | None = None,
        updated_before: float | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[Upload]:
        params = Params("numeric")
        where = upload_filters(
            params, owner=owner, states=states, updated_before=updated_before, after=after
        )
        rows = await self.pool.fetch(
            f'SELECT {_COLUMN_LIST} FROM uploads WHERE {where} ORDER BY "id" LIMIT {params(limit)}',
            *params.values,
        )
        return [codec.decode(_mapping(row)) for row in rows]

    async def totals(self) -> list[Totals]:
        rows = await self.pool.fetch(
            'SELECT "owner", "state", COUNT(*), COALESCE(SUM(COALESCE("length", "offset")), 0) '
            'FROM uploads GROUP BY "owner", "state" ORDER BY "owner" NULLS FIRST, "state"'
        )
        return [Totals(row[0], UploadState(row[1]), int(row[2]), int(row[3])) for row in rows]

    async def activity(self, since: float) -> Activity:
        row = await self.pool.fetchrow(_ACTIVITY, since)
        assert row is not None
        return activity_of(row)

    async def get_handoff(self, upload_id: str) -> Handoff | None:
        row = await self.pool.fetchrow(
            f"SELECT {_HANDOFF} FROM handoffs WHERE upload_id = $1", upload_id
        )
        return None if row is None else Handoff(*row)

    async def claim_handoffs(self, now: float, lease: float, limit: int) -> list[Handoff]:
        # SKIP LOCKED: a claimant racing on another instance passes over the rows this one is
        # claiming instead of waiting for them and then claiming them a second time; the
        # repeated conditions re-check a row that changed since this statement's snapshot.
        rows = await self.pool.fetch(
            'UPDATE handoffs SET "claimed_until" = $1, "attempts" = "attempts" + 1 '
            'WHERE "upload_id" IN (SELECT "upload_id" FROM handoffs WHERE "state" = $2 '
            'AND "next_at" <= $3 AND "claimed_until" <= $3 ORDER BY "next_at" LIMIT $4 '
            'FOR UPDATE SKIP LOCKED) AND "state" = $2 AND "claimed_until" <= $3 '
            f"RETURNING {_HANDOFF}",
            now + lease,
            "pending",
            now,
            limit,
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
        await self.pool.execute(
            'UPDATE handoffs SET "state" = $1, "next_at" = $2, "claimed_until" = 0, '
            '"last_error" = $3, "delivered_at" = $4 WHERE "upload_id" = $5',
            state,
            due,
            error,
            now if delivered else None,
            upload_id,
        )

    async def list_by_state(self, states: frozenset[UploadState], limit: int) -> list[Upload]:
        rows = await self.pool.fetch(
            f"SELECT {_COLUMN_LIST} FROM uploads WHERE state = ANY($1::text[]) "
            "ORDER BY created_at LIMIT $2",
            sorted(str(s) for s in states),
            limit,
        )
        return [codec.decode(_mapping(row)) for row in rows]


async def migrate(connection: asyncpg.Connection | PoolConnectionProxy) -> list[int]:
    """Apply the migrations ``connection``'s database lacks; the versions applied, in order.

    All of it happens in one transaction that first takes :data:`MIGRATION_LOCK`: a second
    instance starting at the same moment blocks on that lock until the first commits, then
    reads the new version and applies nothing. A failing step rolls every step back.
    """
    applied: list[int] = []
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            '"version" INTEGER PRIMARY KEY, '
            '"applied_at" TIMESTAMPTZ NOT NULL DEFAULT now())'
        )
        current = await connection.fetchval(
            'SELECT COALESCE(MAX("version"), 0) FROM schema_version'
        )
        for version, sql in migrations.load("postgres"):
            if version <= current:
                continue
            await connection.execute(sql)
            await connection.execute('INSERT INTO schema_version ("version") VALUES ($1)', version)
            applied.append(version)
    return applied
