from __future__ import annotations

import asyncio

import pytest

from chunkd.exceptions import UploadLocked
from chunkd.uploads.locking import MemoryLocker


async def test_one_holder_at_a_time_and_release_request() -> None:
    locker = MemoryLocker()
    order: list[str] = []

    async def holder() -> None:
        async with locker.hold("u", wait=1) as lease:
            order.append("first in")
            try:
                async with lease.receiving(idle_timeout=3600):
                    await asyncio.sleep(3600)
            except TimeoutError:
                order.append("first asked to release")

    task = asyncio.create_task(holder())
    await asyncio.sleep(0.01)
    async with locker.hold("u", wait=1):
        order.append("second in")
    await task
    assert order == ["first in", "first asked to release", "second in"]
    assert not locker.held("u")


async def test_a_holder_that_does_not_release_makes_the_newcomer_fail() -> None:
    locker = MemoryLocker()
    async with locker.hold("u", wait=1):
        with pytest.raises(UploadLocked):
            async with locker.hold("u", wait=0.05):
                pass


async def test_idle_timeout_ends_a_stalled_body_and_touch_extends_it() -> None:
    locker = MemoryLocker()
    async with locker.hold("u", wait=1) as lease:
        async with lease.receiving(idle_timeout=0.2):
            for _ in range(5):
                await asyncio.sleep(0.1)
                lease.touch()
        with pytest.raises(TimeoutError):
            async with lease.receiving(idle_timeout=0.05):
                await asyncio.sleep(1)


async def test_locks_of_different_uploads_are_independent() -> None:
    locker = MemoryLocker()
    async with locker.hold("a", wait=1), locker.hold("b", wait=0.05):
        pass
