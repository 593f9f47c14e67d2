from __future__ import annotations

import asyncio

import asyncpg

from chunkd.catalog import migrations
from chunkd.catalog.postgres import PostgresCatalog, migrate
from chunkd.testing.catalog_contract import make_upload
from chunkd.uploads.models import UploadState


def test_migrations_mirror_the_sqlite_ones() -> None:
    # Same versions with the same meaning: a step added to one dialect needs its twin.
    assert [v for v, _ in migrations.load("postgres")] == [v for v, _ in migrations.load("sqlite")]


async def test_records_survive_reopening(postgres_dsn: str) -> None:
    upload = make_upload()
    async with PostgresCatalog(postgres_dsn) as catalog:
        await catalog.insert(upload)
        await catalog.compare_and_set(upload.id, {"offset": 0}, {"offset": 42})
    async with PostgresCatalog(postgres_dsn, pool_size=1) as catalog:
        assert await catalog.get(upload.id) == upload.replace(offset=42)


async def test_concurrent_opens_migrate_once(postgres_dsn: str) -> None:
    latest = [version for version, _ in migrations.load("postgres")]
    # Bare migrations on eight sessions at once: one applies every step, the others none.
    connections = [await asyncpg.connect(postgres_dsn) for _ in range(8)]
    try:
        applied = await asyncio.gather(*(migrate(c) for c in connections))
    finally:
        for connection in connections:
            await connection.close()
    assert sorted(applied, key=len) == [[]] * 7 + [latest]
    # And whole catalogs opening together on the migrated database (as instances restart).
    catalogs = [PostgresCatalog(postgres_dsn, pool_size=1) for _ in range(4)]
    await asyncio.gather(*(c.open() for c in catalogs))
    try:
        rows = await catalogs[0].pool.fetch('SELECT "version" FROM schema_version ORDER BY 1')
        assert [row[0] for row in rows] == latest
    finally:
        await asyncio.gather(*(c.close() for c in catalogs))


async def test_concurrent_first_opens_of_an_empty_database(postgres_dsn: str) -> None:
    catalogs = [PostgresCatalog(postgres_dsn, pool_size=1) for _ in range(4)]
    await asyncio.gather(*(c.open() for c in catalogs))
    try:
        upload = make_upload()
        await catalogs[0].insert(upload)
        assert await catalogs[3].get(upload.id) == upload
        count = await catalogs[1].pool.fetchval("SELECT COUNT(*) FROM schema_version")
        assert count == len(migrations.load("postgres"))
    finally:
        await asyncio.gather(*(c.close() for c in catalogs))


async def test_text_the_json_types_could_not_hold_round_trips(postgres_dsn: str) -> None:
    # tus metadata is any UTF-8, NUL included: jsonb would refuse "\u0000", TEXT keeps it.
    upload = make_upload(metadata={"filename": "a\x00b.wav", "note": "\u00e9\U0001f600"})
    async with PostgresCatalog(postgres_dsn) as catalog:
        await catalog.insert(upload)
        assert await catalog.get(upload.id) == upload
        assert await catalog.compare_and_set(upload.id, {"metadata": upload.metadata}, {})


async def test_the_pool_is_bounded_by_pool_size(postgres_dsn: str) -> None:
    async with PostgresCatalog(postgres_dsn, pool_size=2, durable=False) as catalog:
        upload = make_upload()
        await catalog.insert(upload)
        await asyncio.gather(*(catalog.get(upload.id) for _ in range(50)))
        assert catalog.pool.get_size() <= 2
        mode = await catalog.pool.fetchval("SHOW synchronous_commit")
        assert mode == "off"


async def test_handoffs_are_claimed_once_across_instances(postgres_dsn: str) -> None:
    # Two catalogs with their own pools are two servers; many claims race over 40 hand-offs.
    async with (
        PostgresCatalog(postgres_dsn, pool_size=4) as one,
        PostgresCatalog(postgres_dsn, pool_size=4) as two,
    ):
        uploads = [make_upload(state=UploadState.VERIFYING) for _ in range(40)]
        for upload in uploads:
            await one.insert(upload)
        completions = await asyncio.gather(
            *(
                catalog.compare_and_set(
                    u.id, {"state": UploadState.VERIFYING}, {"state": UploadState.COMPLETE}
                )
                for u in uploads
                for catalog in (one, two)  # both instances try to finish every upload
            )
        )
        assert sum(c is not None for c in completions) == 40
        claims = await asyncio.gather(
            *(catalog.claim_handoffs(1000.0, 30.0, 3) for _ in range(10) for catalog in (one, two))
        )
        claimed = [h.upload_id for batch in claims for h in batch]
        assert len(claimed) == len(set(claimed))  # nobody claimed one twice
        claimed += [h.upload_id for h in await two.claim_handoffs(1000.0, 30.0, 100)]
        assert sorted(claimed) == sorted(u.id for u in uploads)
        count = await one.pool.fetchval("SELECT COUNT(*) FROM handoffs")
        assert count == 40
