from __future__ import annotations

import pytest

from chunkd.catalog.memory import MemoryCatalog
from chunkd.exceptions import UploadExpired, UploadNotFound
from chunkd.storage.memory import MemoryStorage
from chunkd.uploads.expiry import sweep, sweep_all
from chunkd.uploads.models import UploadState
from chunkd.uploads.service import UploadService
from tests.uploads.conftest import Clock, body


async def test_sweep_removes_idle_unfinished_uploads_only(
    service: UploadService, clock: Clock
) -> None:
    idle = await service.create(length=10)
    await service.append(idle.id, 0, body(b"abcd"))
    done = await service.create(length=2)
    await service.append(done.id, 0, body(b"ok"))
    clock.now += 1800
    active = await service.create(length=10)
    clock.now += 2000  # idle is past its hour, active is not
    report = await sweep(service)
    assert (report.expired, report.bytes_reclaimed) == (1, 4)
    assert isinstance(service.storage, MemoryStorage)
    assert idle.id not in service.storage.blobs
    with pytest.raises(UploadExpired):
        await service.get(idle.id)
    assert (await service.get(active.id)).state is UploadState.RECEIVING
    assert (await service.get(done.id)).state is UploadState.COMPLETE
    clock.now += 3600 * 2  # tombstones go after another expiry period
    report = await sweep_all(service)
    assert report.purged == 1 and report.expired == 1
    with pytest.raises(UploadNotFound):
        await service.get(idle.id)
    assert (await service.get(done.id)).state is UploadState.COMPLETE


async def test_partial_uploads_expire_even_when_finished(
    service: UploadService, clock: Clock
) -> None:
    part = await service.create(length=2, partial=True)
    await service.append(part.id, 0, body(b"ab"))
    clock.now += 4000
    assert (await sweep(service)).expired == 1


async def test_sweep_skips_uploads_being_written(service: UploadService, clock: Clock) -> None:
    upload = await service.create(length=10)
    clock.now += 4000
    async with service.locker.hold(upload.id, wait=1):
        assert (await sweep(service)).expired == 0
    assert isinstance(service.catalog, MemoryCatalog)
    assert (await sweep(service)).expired == 1


async def test_the_sweeper_asks_the_store_to_abort_orphans(service: UploadService) -> None:
    from chunkd.uploads.expiry import abort_orphans

    assert await abort_orphans(service) == 0  # memory storage keeps no orphans
    asked: list[float] = []

    async def cleaner(older_than: float) -> int:
        asked.append(older_than)
        return 3

    service.storage.abort_orphans = cleaner  # type: ignore[attr-defined]
    assert await abort_orphans(service) == 3
    assert asked == [2 * service.config.expiry]
