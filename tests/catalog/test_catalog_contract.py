from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chunkd.catalog.memory import MemoryCatalog
from chunkd.catalog.postgres import PostgresCatalog
from chunkd.catalog.sqlite import SqliteCatalog
from chunkd.testing.catalog_contract import CatalogContract


class TestMemoryCatalog(CatalogContract):
    @pytest.fixture
    async def catalog(self) -> AsyncIterator[MemoryCatalog]:
        async with MemoryCatalog() as catalog:
            yield catalog


class TestSqliteCatalog(CatalogContract):
    @pytest.fixture
    async def catalog(self, tmp_path: Path) -> AsyncIterator[SqliteCatalog]:
        async with SqliteCatalog(tmp_path / "catalog.sqlite3") as catalog:
            yield catalog


class TestPostgresCatalog(CatalogContract):
    @pytest.fixture
    async def catalog(self, postgres_dsn: str) -> AsyncIterator[PostgresCatalog]:
        async with PostgresCatalog(postgres_dsn, pool_size=4) as catalog:
            yield catalog
