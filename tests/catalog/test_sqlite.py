from __future__ import annotations

import sqlite3
from pathlib import Path

from chunkd.catalog import migrations
from chunkd.catalog.sqlite import SqliteCatalog
from chunkd.testing.catalog_contract import make_upload
from chunkd.uploads.models import Part


async def test_records_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    upload = make_upload()
    async with SqliteCatalog(path) as catalog:
        await catalog.insert(upload)
        await catalog.compare_and_set(upload.id, {"offset": 0}, {"offset": 42})
    async with SqliteCatalog(path) as catalog:
        assert await catalog.get(upload.id) == upload.replace(offset=42)


async def test_schema_is_versioned_and_migrations_run_once(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    async with SqliteCatalog(path):
        pass
    async with SqliteCatalog(path):  # a second open must not re-run migration 1
        pass
    latest = max(version for version, _ in migrations.load("sqlite"))
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == latest
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


async def test_parts_stored_before_0006_keep_their_sha256_spelled_out(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    upload = make_upload(part_size=10)
    with sqlite3.connect(path) as db:  # a catalog as version 5 left it, with one part
        for version, sql in migrations.load("sqlite"):
            if version <= 5:
                db.executescript(sql)
        db.execute("PRAGMA user_version=5")
    db.close()
    async with SqliteCatalog(path) as catalog:
        await catalog.insert(upload)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=5")
        db.execute("ALTER TABLE parts RENAME COLUMN digest TO sha256")
        db.execute("INSERT INTO parts VALUES (?, 0, 10, 'ab12')", (upload.id,))
    db.close()
    async with SqliteCatalog(path) as catalog:  # opening migrates to 6
        assert await catalog.get_part(upload.id, 0) == Part(0, 10, "sha256:ab12")
