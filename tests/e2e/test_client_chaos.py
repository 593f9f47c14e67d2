"""The client SDK against the real server through a proxy that cuts and stalls connections:
20 files of mixed sizes, sent by Client (threads), AsyncClient (tasks) and over tus, all arrive
byte-identical."""

from __future__ import annotations

import asyncio
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from chunkd.client import AsyncClient, Client, ResumeState, RetryPolicy, UploadResult
from chunkd.testing.server import ServerProcess
from tests.client.proxy import ChaosProxy

pytestmark = pytest.mark.e2e

MiB = 1 << 20
SIZES = [0, 1, 1000, 65_536, 300_000, MiB, MiB + 1, 2 * MiB - 7, 3 * MiB, 4 * MiB,
         5 * MiB + 3, 6 * MiB, 7 * MiB, 8 * MiB, 9 * MiB, 10 * MiB, 3 * MiB + 5, 4 * MiB + 9,
         12 * MiB, 30 * MiB]  # fmt: skip
RETRY = RetryPolicy(attempts=30, base=0.05, cap=0.5)


def test_twenty_files_arrive_byte_identical_through_cuts_and_stalls(
    server: ServerProcess, tmp_path: Path
) -> None:
    files = []
    for index, size in enumerate(SIZES):
        path = tmp_path / f"file-{index:02}.bin"
        path.write_bytes(os.urandom(size))
        files.append(path)
    state = ResumeState(tmp_path / "resume.sqlite3")
    proxy = ChaosProxy(server.port, cut=0.7, cut_within=4 * MiB, stall=0.3,
                       stall_seconds=(0.3, 2.5))  # fmt: skip
    options = {"retry": RETRY, "state": state, "timeout": 1.5, "part_size": 1 * MiB}
    rest = Client(proxy.url, parallel=4, **options)  # type: ignore[arg-type]
    tus = Client(proxy.url, protocol="tus", **options)  # type: ignore[arg-type]

    async def upload_async(paths: list[Path]) -> list[UploadResult]:
        async with AsyncClient(proxy.url, parallel=3, **options) as tasks:  # type: ignore[arg-type]
            return await asyncio.gather(*(tasks.upload(path) for path in paths))

    with proxy, rest, tus, ThreadPoolExecutor(3) as pool:
        by_threads = pool.map(rest.upload, files[:12])
        by_tus = pool.map(tus.upload, files[12:15])
        by_tasks = pool.submit(asyncio.run, upload_async(files[15:]))
        results = [*by_threads, *by_tus, *by_tasks.result()]
    assert proxy.cuts > 0 and proxy.stalls > 0
    with httpx.Client(base_url=server.url, timeout=30) as direct:
        for path, result in zip(files, results, strict=True):
            local = hashlib.sha256(path.read_bytes()).hexdigest()
            assert result.sha256 == local and result.state == "complete"
            status = direct.get(f"/uploads/{result.id}").json()
            assert status["state"] == "complete"
            assert status["digests"]["sha256"] == local, path
            assert hashlib.sha256(direct.get(f"/files/{result.id}").content).hexdigest() == local
    assert [r.protocol for r in results].count("tus") == 3
    state.close()
