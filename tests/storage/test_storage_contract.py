from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chunkd.storage.local import LocalStorage
from chunkd.storage.memory import MemoryStorage
from chunkd.testing.storage_contract import StorageContract


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    async def storage(self) -> AsyncIterator[MemoryStorage]:
        async with MemoryStorage() as storage:
            yield storage


class TestLocalStorage(StorageContract):
    @pytest.fixture
    async def storage(self, tmp_path: Path) -> AsyncIterator[LocalStorage]:
        async with LocalStorage(tmp_path, batch_size=64 * 1024) as storage:
            yield storage
