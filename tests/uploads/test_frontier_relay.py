"""REST parts of one upload stored by two workers: one frontier, hashed once, never read back
at completion while the worker holding the running digests is there."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chunkd.catalog.memory import MemoryCatalog
from chunkd.storage.memory import MemoryStorage
from chunkd.uploads import finishing
from chunkd.uploads.models import UploadState
from chunkd.uploads.peers import Peers
from chunkd.uploads.service import ServiceConfig, UploadService
from tests.uploads.conftest import body

PART = 100_000
DATA = [bytes([n]) * PART for n in range(4)]
SHA256 = hashlib.sha256(b"".join(DATA)).hexdigest()


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[list[UploadService]]:
    """Two workers' services over one catalog and one store (as two processes share a data
    directory), each with its own running digests, talking through their peer sockets."""
    catalog, storage = MemoryCatalog(), MemoryStorage()
    config = ServiceConfig(max_size=10_000_000, expiry=3600, idle_timeout=5, lock_wait=2)
    services = [
        UploadService(catalog, storage, config, peers=Peers(tmp_path, ident=4_200_001 + n))
        for n in range(2)
    ]
    async with catalog, storage:
        for service in services:
            assert service.peers is not None
            await service.peers.open()
        try:
            yield services
        finally:
            for service in services:
                assert service.peers is not None
                await service.peers.close()


async def settled(service: UploadService, upload_id: str, offset: int) -> None:
    for _ in range(200):
        if (await service.get(upload_id)).offset == offset:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the frontier did not reach {offset}")


@pytest.fixture
def no_read_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finishing must not read the whole upload back to compute its digests."""

    async def refuse(*args: object) -> dict[str, str]:
        raise AssertionError("finishing read the whole upload back")

    monkeypatch.setattr(finishing, "hash_stored", refuse)


@pytest.mark.usefixtures("no_read_back")
async def test_parts_on_both_workers_one_frontier_and_no_read_back(
    workers: list[UploadService],
) -> None:
    a, b = workers
    session = await a.sessions.create(size=4 * PART, metadata={}, part_size=PART)
    await a.sessions.put_part(session.id, 0, body(DATA[0]))
    await settled(a, session.id, PART)
    assert a.digests.holds(session.id) and not b.digests.holds(session.id)
    await b.sessions.put_part(session.id, 1, body(DATA[1]))  # b nudges a, which advances
    await settled(b, session.id, 2 * PART)
    await b.sessions.put_part(session.id, 3, body(DATA[3]))
    await b.sessions.put_part(session.id, 2, body(DATA[2]))
    done = await b.sessions.complete(session.id, declared={"sha256": SHA256})
    assert done.state is UploadState.COMPLETE
    assert done.digests == {"sha256": SHA256}
    assert not a.digests.holds(session.id) and not b.digests.holds(session.id)


async def test_with_the_worker_holding_the_digests_gone_completing_reads_back_once(
    workers: list[UploadService],
) -> None:
    a, b = workers
    session = await a.sessions.create(size=4 * PART, metadata={}, part_size=PART)
    await a.sessions.put_part(session.id, 0, body(DATA[0]))
    await settled(a, session.id, PART)
    assert a.peers is not None
    await a.peers.close()  # a is killed: its running digests are gone with it
    for index in (1, 2, 3):
        await b.sessions.put_part(session.id, index, body(DATA[index]))
    assert (await b.get(session.id)).offset == PART  # b does not move past unhashed bytes
    done = await b.sessions.complete(session.id, declared={"sha256": SHA256})
    assert done.state is UploadState.COMPLETE
    assert done.digests == {"sha256": SHA256}
    await a.peers.open()  # for the fixture's clean-up


@pytest.mark.usefixtures("no_read_back")
async def test_tus_patches_on_both_workers_the_holder_catches_up_and_records(
    workers: list[UploadService],
) -> None:
    """A client opening a new connection per PATCH (tuspy) alternates workers."""
    a, b = workers
    upload = await a.create(length=4 * PART)
    await a.append(upload.id, 0, body(DATA[0]))
    assert a.digests.holds(upload.id)
    await b.append(upload.id, PART, body(DATA[1]))  # unhashed on b; a catches up
    for _ in range(200):
        running = a.digests.peek(upload.id)
        if running is not None and running.offset == 2 * PART:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the holder did not catch up")
    await a.append(upload.id, 2 * PART, body(DATA[2]))  # hashed as it arrives again
    done = await b.append(upload.id, 3 * PART, body(DATA[3]))
    assert done.state is UploadState.COMPLETE
    assert done.digests == {"sha256": SHA256}
    assert not a.digests.holds(upload.id) and not b.digests.holds(upload.id)


async def test_tus_with_the_holder_gone_the_last_worker_reads_back_once(
    workers: list[UploadService],
) -> None:
    a, b = workers
    upload = await a.create(length=2 * PART)
    await a.append(upload.id, 0, body(DATA[0]))
    assert a.peers is not None
    await a.peers.close()
    done = await b.append(upload.id, PART, body(DATA[1]))
    assert done.state is UploadState.COMPLETE
    assert done.digests == {"sha256": hashlib.sha256(DATA[0] + DATA[1]).hexdigest()}
    await a.peers.open()
