"""PostgresLocker across instances: each locker has its own pool, as two servers would."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from chunkd.exceptions import UploadLocked
from chunkd.uploads.locking import MemoryLocker
from chunkd.uploads.locking_postgres import PostgresLocker, channel_name, lock_key


@pytest.fixture
async def locker_a(postgres_dsn: str) -> AsyncIterator[PostgresLocker]:
    async with PostgresLocker(postgres_dsn) as locker:
        yield locker


@pytest.fixture
async def locker_b(postgres_dsn: str) -> AsyncIterator[PostgresLocker]:
    async with PostgresLocker(postgres_dsn) as locker:
        yield locker


async def _lock_holders(dsn: str, upload_id: str) -> int:
    key = lock_key(upload_id)
    admin = await asyncpg.connect(dsn)
    try:
        count: int = await admin.fetchval(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1",
            key,
        )
        return count
    finally:
        await admin.close()


def test_keys_and_channels() -> None:
    assert lock_key("a" * 32) != lock_key("b" * 32)
    assert -(2**63) <= lock_key("a" * 32) < 2**63
    assert len(channel_name(lock_key("x"))) < 63
    assert channel_name(-1) == "chunkd_lock_ffffffffffffffff"


async def test_a_newcomer_on_another_instance_asks_the_holder_to_release(
    locker_a: PostgresLocker, locker_b: PostgresLocker, postgres_dsn: str
) -> None:
    order: list[str] = []
    holding = asyncio.Event()

    async def holder() -> None:
        async with locker_a.hold("u", wait=1) as lease:
            order.append("a in")
            holding.set()
            try:
                async with lease.receiving(idle_timeout=3600):
                    await asyncio.sleep(3600)
            except TimeoutError:
                order.append("a asked to release")

    task = asyncio.create_task(holder())
    try:
        await holding.wait()
        assert await _lock_holders(postgres_dsn, "u") == 1
        started = time.monotonic()
        async with locker_b.hold("u", wait=5):
            order.append("b in")
            took = time.monotonic() - started
            assert await _lock_holders(postgres_dsn, "u") == 1
        await task
    finally:
        task.cancel()
    assert order == ["a in", "a asked to release", "b in"]
    assert took < 1.0  # woken by the holder's 'released', not by a long back-off
    assert not locker_a.held("u") and not locker_b.held("u")
    assert await _lock_holders(postgres_dsn, "u") == 0


async def test_a_holder_that_does_not_release_makes_the_newcomer_fail_after_wait(
    locker_a: PostgresLocker, locker_b: PostgresLocker
) -> None:
    async with locker_a.hold("u", wait=1) as lease:
        started = time.monotonic()
        with pytest.raises(UploadLocked):
            async with locker_b.hold("u", wait=0.3):
                pass
        assert 0.3 <= time.monotonic() - started < 2.0
        assert lease.release_requested  # it was asked, it just did not let go
    # Once the holder is done the upload is free for the other instance again.
    async with locker_b.hold("u", wait=1):
        pass


async def test_locks_of_different_uploads_are_independent(
    locker_a: PostgresLocker, locker_b: PostgresLocker
) -> None:
    async with locker_a.hold("a", wait=1), locker_b.hold("b", wait=0.05):
        pass


async def test_within_one_instance_the_newcomer_takes_over_too(locker_a: PostgresLocker) -> None:
    order: list[str] = []
    holding = asyncio.Event()

    async def holder() -> None:
        async with locker_a.hold("u", wait=1) as lease:
            holding.set()
            try:
                async with lease.receiving(idle_timeout=3600):
                    await asyncio.sleep(3600)
            except TimeoutError:
                order.append("first asked to release")

    task = asyncio.create_task(holder())
    try:
        await holding.wait()
        async with locker_a.hold("u", wait=2):
            order.append("second in")
        await task
    finally:
        task.cancel()
    assert order == ["first asked to release", "second in"]


async def test_many_instances_racing_hold_one_at_a_time(postgres_dsn: str) -> None:
    lockers = [PostgresLocker(postgres_dsn, max_connections=3) for _ in range(3)]
    for locker in lockers:
        await locker.open()
    inside = 0
    most = 0

    async def visit(locker: PostgresLocker) -> None:
        nonlocal inside, most
        async with locker.hold("u", wait=10):  # holders here never refuse: a plain queue
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.005)
            inside -= 1

    try:
        await asyncio.gather(*(visit(lockers[n % 3]) for n in range(24)))
    finally:
        for locker in lockers:
            await locker.close()
    assert most == 1


async def test_the_lock_dies_with_the_holders_session(
    locker_a: PostgresLocker, locker_b: PostgresLocker, postgres_dsn: str
) -> None:
    async with locker_a.hold("u", wait=1) as lease:
        admin = await asyncpg.connect(postgres_dsn)
        try:
            killed = await admin.fetchval(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND "
                "((classid::bigint << 32) | objid::bigint) = $1",
                lock_key("u"),
            )
        finally:
            await admin.close()
        assert killed is True
        async with locker_b.hold("u", wait=5):
            pass
        # The holder was told its lock is gone, so a body it reads would stop now.
        for _ in range(100):
            if lease.release_requested:
                break
            await asyncio.sleep(0.01)
        assert lease.release_requested
    # Leaving after the loss is quiet, and the instance can lock the upload again.
    async with locker_a.hold("u", wait=1):
        pass


_HOLDER = """
import asyncio, sys
from chunkd.uploads.locking_postgres import PostgresLocker

async def main():
    async with PostgresLocker(sys.argv[1]) as locker:
        async with locker.hold("u", wait=5):
            print("held", flush=True)
            await asyncio.sleep(3600)  # deaf to release requests, like a hung process

asyncio.run(main())
"""


async def test_the_lock_is_freed_when_the_holding_process_is_killed(
    locker_b: PostgresLocker, postgres_dsn: str
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLDER,
        postgres_dsn,
        stdout=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            line = await process.stdout.readline()
        assert line == b"held\n"
        with pytest.raises(UploadLocked):
            async with locker_b.hold("u", wait=0.2):
                pass
        process.kill()  # SIGKILL to that PID: no clean-up of any kind in the holder
        started = time.monotonic()
        async with locker_b.hold("u", wait=5):
            assert time.monotonic() - started < 2.0
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_release_all_asks_this_instances_holders(
    locker_a: PostgresLocker, locker_b: PostgresLocker
) -> None:
    async with (
        locker_a.hold("a", wait=1) as first,
        locker_a.hold("b", wait=1) as second,
        locker_b.hold("c", wait=1) as other,
    ):
        assert locker_a.release_all() == 2  # the server is stopping: let go, save
        assert first.release_requested and second.release_requested
        assert not other.release_requested


async def test_every_locker_opens_and_closes_with_the_service() -> None:
    locker = MemoryLocker()
    async with locker, locker.hold("u", wait=1):  # nothing to connect, but the same lifecycle
        pass
