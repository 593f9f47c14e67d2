from __future__ import annotations

import os
from pathlib import Path

import pytest

from chunkd.storage.local import LocalStorage


async def test_files_are_sparse_and_written_in_place(tmp_path: Path) -> None:
    async with LocalStorage(tmp_path) as storage:
        handle = await storage.create("ab" * 16, 1 << 30)
        async with storage.open_writer(handle, (1 << 30) - 4) as writer:
            await writer.write(b"tail")
            await writer.flush(durable=True)
        path = tmp_path / handle["path"]
        assert path.stat().st_size == 1 << 30
        assert path.stat().st_blocks * 512 < 1 << 20  # nothing allocated for the hole


@pytest.mark.parametrize(
    "path", ["../outside", "files/../../outside", "/etc/passwd", "catalog.sqlite3"]
)
async def test_handles_cannot_leave_the_files_dir(tmp_path: Path, path: str) -> None:
    async with LocalStorage(tmp_path / "data") as storage:
        with pytest.raises(ValueError):
            storage.open_writer({"path": path}, 0)
        with pytest.raises(ValueError):
            await storage.delete({"path": path})


async def test_a_handle_is_resolved_once_while_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved: list[Path] = []
    resolve = Path.resolve

    def counting(self: Path, strict: bool = False) -> Path:
        resolved.append(self)
        return resolve(self, strict)

    async with LocalStorage(tmp_path) as storage:
        handle = await storage.create("ef" * 16, 8)
        monkeypatch.setattr(Path, "resolve", counting)
        for _ in range(3):
            async with storage.open_writer(handle, 0) as writer:
                await writer.write(b"12345678")
                await writer.flush(durable=False)
        assert len(resolved) == 0  # resolved (and checked) when it was created
        for _ in range(2):  # a handle out of bounds is refused every time, never kept
            with pytest.raises(ValueError):
                storage.open_writer({"path": "files/../../outside"}, 0)
        assert len(resolved) == 2
        await storage.delete(handle)
        assert storage._resolved == {}


async def test_ids_must_be_plain(tmp_path: Path) -> None:
    async with LocalStorage(tmp_path) as storage:
        for upload_id in ("../x", "a/b", ".."):
            with pytest.raises(ValueError):
                await storage.create(upload_id, 1)
    assert not (tmp_path.parent / "x").exists()
    assert os.listdir(tmp_path / "files") == []


async def test_a_cancelled_write_leaves_nothing_unflushed(tmp_path: Path) -> None:
    """A release request or idle timeout cancels a request while a batch is being written:
    flush must still wait for that batch (and write the rest) before it reports an end."""
    import asyncio
    import contextlib
    import time

    def slow(chunk: bytes) -> None:
        if chunk.startswith(b"a"):  # only the first batch is slow
            time.sleep(0.3)

    async with LocalStorage(tmp_path, batch_size=1) as storage:
        handle = await storage.create("cd" * 16, 20)
        async with storage.open_writer(handle, 0, [slow]) as writer:
            await writer.write(b"a" * 10)  # in flight in a worker thread for 0.2 s
            second = asyncio.create_task(writer.write(b"b" * 10))
            await asyncio.sleep(0.05)
            second.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await second
            assert await writer.flush(durable=True) == 20
        assert (tmp_path / handle["path"]).read_bytes() == b"a" * 10 + b"b" * 10


async def test_batches_shrink_as_writers_share_the_budget(tmp_path: Path) -> None:
    async with LocalStorage(tmp_path, batch_size=1 << 20, batch_budget=4 << 20) as storage:
        handles = [await storage.create(f"{n:02d}" * 16, None) for n in range(16)]
        first = storage.open_writer(handles[0], 0)
        assert storage.batch_limit == 1 << 20  # alone: the full batch
        others = [storage.open_writer(handle, 0) for handle in handles[1:]]
        assert storage.batch_limit == (4 << 20) // 16  # sixteen at once: a share, for all
        for writer in [first, *others]:
            await writer.close()
        assert storage.batch_limit == 1 << 20
