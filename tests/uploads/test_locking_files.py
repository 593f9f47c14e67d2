"""Upload locks across worker processes: each holder here is a real second process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chunkd.exceptions import UploadLocked
from chunkd.uploads.locking_files import FileLocker, holder_of, lock_offset
from chunkd.uploads.peers import Peers

HOLDER = """
import asyncio, sys
from pathlib import Path
from chunkd.uploads.locking_files import FileLocker
from chunkd.uploads.peers import Peers

async def main() -> None:
    run, upload, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    async with FileLocker(run / "locks", Peers(run / "peers")) as locker:
        async with locker.hold(upload, wait=5) as lease:
            print("holding", flush=True)
            try:
                if mode == "yields":
                    async with lease.receiving(idle_timeout=60):
                        await asyncio.sleep(60)
                else:
                    await asyncio.sleep(60)
            except TimeoutError:
                print("asked to release", flush=True)

asyncio.run(main())
"""


@contextmanager
def holder(run: Path, upload: str, mode: str) -> Iterator[subprocess.Popen[str]]:
    """Another worker process holding ``upload``'s lock ("yields" when asked, or "stubborn")."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run), upload, mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "holding"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def locker_in(run: Path) -> FileLocker:
    return FileLocker(run / "locks", Peers(run / "peers"))


def test_lock_offsets_are_stable_and_in_range() -> None:
    assert lock_offset("abc") == lock_offset("abc") != lock_offset("abd")
    assert all(0 <= lock_offset(str(n)) < 1 << 62 for n in range(1000))


async def test_a_newcomer_asks_the_holding_worker_to_release_and_takes_over(
    tmp_path: Path,
) -> None:
    with holder(tmp_path, "u1", "yields") as other:
        async with locker_in(tmp_path) as locker:
            assert locker._fd is not None
            assert holder_of(locker._fd, lock_offset("u1")) == other.pid
            started = time.monotonic()
            async with locker.hold("u1", wait=5):
                took = time.monotonic() - started
                assert holder_of(locker._fd, lock_offset("u1")) is None  # ours now
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "asked to release"
    assert took < 2


async def test_a_holder_that_does_not_release_makes_the_newcomer_fail(tmp_path: Path) -> None:
    with holder(tmp_path, "u1", "stubborn"):
        async with locker_in(tmp_path) as locker:
            with pytest.raises(UploadLocked):
                async with locker.hold("u1", wait=0.3):
                    pass


async def test_the_lock_is_free_once_the_holding_worker_is_killed(tmp_path: Path) -> None:
    with holder(tmp_path, "u1", "stubborn") as other:
        async with locker_in(tmp_path) as locker:

            async def kill_soon() -> None:
                await asyncio.sleep(0.2)
                os.kill(other.pid, signal.SIGKILL)

            killer = asyncio.create_task(kill_soon())
            async with locker.hold("u1", wait=5):
                assert other.wait(5) == -signal.SIGKILL
            await killer


async def test_locks_of_different_uploads_are_independent(tmp_path: Path) -> None:
    with holder(tmp_path, "u1", "yields") as other:
        async with locker_in(tmp_path) as locker, locker.hold("u2", wait=0.1):
            pass
        assert other.poll() is None  # never asked


async def test_within_one_worker_the_newcomer_takes_over_too(tmp_path: Path) -> None:
    async with locker_in(tmp_path) as locker:
        asked = asyncio.Event()

        async def first() -> None:
            async with locker.hold("u1", wait=1) as lease:
                try:
                    async with lease.receiving(idle_timeout=60):
                        await asyncio.sleep(60)
                except TimeoutError:
                    asked.set()

        task = asyncio.create_task(first())
        await asyncio.sleep(0.05)
        async with locker.hold("u1", wait=2):
            assert asked.is_set()
            assert locker.held("u1")
        await task
        assert not locker.held("u1")
