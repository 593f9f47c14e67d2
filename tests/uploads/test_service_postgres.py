"""Two upload services sharing PostgreSQL (catalog and locks) and one storage directory: two
server instances as a load balancer would see them, in one process."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from chunkd.catalog.postgres import PostgresCatalog
from chunkd.exceptions import OffsetMismatch
from chunkd.storage.local import LocalStorage
from chunkd.uploads.locking_postgres import PostgresLocker
from chunkd.uploads.models import UploadState
from chunkd.uploads.service import ServiceConfig, UploadService
from tests.uploads.conftest import body


@pytest.fixture
async def instances(postgres_dsn: str, tmp_path: Path) -> AsyncIterator[list[UploadService]]:
    config = ServiceConfig(max_size=1000, expiry=3600, idle_timeout=5, lock_wait=2)
    services = [
        UploadService(
            PostgresCatalog(postgres_dsn, pool_size=4),
            LocalStorage(tmp_path / "data", threads=2),
            config,
            locker=PostgresLocker(postgres_dsn, max_connections=4),
        )
        for _ in range(2)
    ]
    async with AsyncExitStack() as stack:
        for service in services:
            await stack.enter_async_context(service.catalog)
            await stack.enter_async_context(service.storage)
            await stack.enter_async_context(service.locker)
        yield services


async def test_a_request_on_another_instance_takes_over_a_stalled_one(
    instances: list[UploadService],
) -> None:
    a, b = instances
    upload = await a.create(length=10)
    stalled = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b"abc"
        stalled.set()
        await asyncio.sleep(3600)
        yield b"never"

    first = asyncio.create_task(a.append(upload.id, 0, stalls()))
    try:
        await stalled.wait()
        # B asks A (through PostgreSQL) to let go; A saves its three bytes and yields at once.
        with pytest.raises(OffsetMismatch):
            await asyncio.wait_for(b.append(upload.id, 0, body(b"abc")), timeout=2)
        assert (await first).offset == 3
    finally:
        first.cancel()
    done = await b.append(upload.id, 3, body(b"defghij"))
    assert done.state is UploadState.COMPLETE
    assert done.digests["sha256"] == hashlib.sha256(b"abcdefghij").hexdigest()
    handoff = await a.catalog.get_handoff(upload.id)
    assert handoff is not None and handoff.state == "pending"


async def test_racing_appends_on_two_instances_one_wins(instances: list[UploadService]) -> None:
    a, b = instances
    upload = await a.create(length=6)
    results = await asyncio.gather(
        *(service.append(upload.id, 0, body(b"abc")) for service in (a, b, a, b, a)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, OffsetMismatch) for r in results if isinstance(r, BaseException))
    assert (await b.get(upload.id)).offset == 3
