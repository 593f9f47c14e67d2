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


async def test_ids_must_be_plain(tmp_path: Path) -> None:
    async with LocalStorage(tmp_path) as storage:
        for upload_id in ("../x", "a/b", ".."):
            with pytest.raises(ValueError):
                await storage.create(upload_id, 1)
    assert not (tmp_path.parent / "x").exists()
    assert os.listdir(tmp_path / "files") == []
