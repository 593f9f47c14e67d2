from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chunkd.catalog.memory import MemoryCatalog
from chunkd.storage.memory import MemoryStorage
from chunkd.uploads.service import ServiceConfig, UploadService


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def service(clock: Clock) -> AsyncIterator[UploadService]:
    service = UploadService(
        MemoryCatalog(),
        MemoryStorage(),
        ServiceConfig(max_size=1000, expiry=3600, idle_timeout=5, lock_wait=2),
        clock=clock,
    )
    async with service.catalog, service.storage:
        yield service


async def body(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
