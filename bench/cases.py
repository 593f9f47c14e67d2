"""One timed case: a workload against a server (or dd), then byte-for-byte verification.

Before each timed upload the page cache is flushed with ``sync`` so writeback of earlier
cases' data does not land inside this one. Every stored byte is checked afterwards: the
sha256 of each stored file must equal that of the source range, or :class:`VerificationError`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import BinaryIO

from loadclient import put_upload, tus_upload
from monitor import TreeMonitor
from report import Run
from servers import Spec, running

MIB = 1024 * 1024
_HASH_CHUNK = 8 * MIB


class VerificationError(RuntimeError):
    """A stored file differs from the bytes that were sent."""


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    uploads: int  # concurrent uploads
    size: int  # bytes per upload
    patch: int  # bytes per request

    @property
    def total(self) -> int:
        return self.uploads * self.size


@cache
def source_digest(source: Path, offset: int, size: int) -> str:
    digest = hashlib.sha256()
    with source.open("rb") as f:
        f.seek(offset)
        left = size
        while left:
            chunk = f.read(min(_HASH_CHUNK, left))
            if not chunk:
                raise VerificationError(f"{source} is shorter than {offset + size}")
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def stored_digest(parts: list[Path]) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    for part in parts:
        with part.open("rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    return size, digest.hexdigest()


def verify(label: str, source: Path, wl: Workload, stored: list[list[Path]]) -> None:
    if len(stored) != wl.uploads:
        raise VerificationError(f"{label}: {len(stored)} uploads stored, {wl.uploads} sent")
    for index, parts in enumerate(stored):
        size, digest = stored_digest(parts)
        want = source_digest(source, index * wl.size, wl.size)
        if size != wl.size or digest != want:
            raise VerificationError(
                f"{label}: upload {index} stored as {parts[0]}...: {size} bytes sha256 {digest},"
                f" expected {wl.size} bytes sha256 {want}"
            )


async def _client(spec: Spec, port: int, file: BinaryIO, wl: Workload, tag: str) -> list[list[str]]:
    if spec.kind == "tus":
        paths = await asyncio.gather(
            *(
                tus_upload(port, "/files/", file, i * wl.size, wl.size, wl.patch)
                for i in range(wl.uploads)
            )
        )
        return [[p] for p in paths]
    pieces = -(-wl.size // wl.patch)
    names = [
        [f"/upload/{tag}-{i}" + (f"/part-{j:05d}" if pieces > 1 else "") for j in range(pieces)]
        for i in range(wl.uploads)
    ]
    await asyncio.gather(
        *(
            put_upload(port, names[i], file, i * wl.size, wl.size, wl.patch)
            for i in range(wl.uploads)
        )
    )
    return names


def run_server(spec: Spec, wl: Workload, source: Path, work: Path, tag: str) -> Run:
    data = work / f"{spec.group}-{tag}"
    try:
        with running(spec, data) as (port, proc), source.open("rb") as file:
            os.sync()
            with TreeMonitor(proc.pid) as monitor:
                start = time.perf_counter()
                paths = asyncio.run(
                    asyncio.wait_for(_client(spec, port, file, wl, tag), timeout=900)
                )
                seconds = time.perf_counter() - start
        stored = [[spec.stored(data, p) for p in parts] for parts in paths]
        verify(f"{spec.name} {wl.key}", source, wl, stored)
        return Run(seconds, wl.total, monitor.peak, monitor.cpu)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def run_dd(flags: list[str], wl: Workload, source: Path, work: Path, tag: str) -> Run:
    """``wl.uploads`` concurrent dd processes, each copying its slice of the source."""
    out = work / f"dd-{tag}"
    out.mkdir(parents=True)
    try:
        targets = [out / f"{i}.bin" for i in range(wl.uploads)]
        commands = [
            [
                "dd",
                f"if={source}",
                f"of={target}",
                "iflag=skip_bytes,count_bytes",
                f"skip={i * wl.size}",
                f"count={wl.size}",
                "status=none",
                *flags,
            ]
            for i, target in enumerate(targets)
        ]
        os.sync()
        start = time.perf_counter()
        procs = [subprocess.Popen(c) for c in commands]
        peak, cpu, failed = 0, 0.0, []
        for proc in procs:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            failed += [proc.args] if proc.returncode else []
            peak += usage.ru_maxrss * 1024
            cpu += usage.ru_utime + usage.ru_stime
        seconds = time.perf_counter() - start
        if failed:
            raise RuntimeError(f"dd failed: {failed}")
        verify(f"dd {tag}", source, wl, [[t] for t in targets])
        return Run(seconds, wl.total, peak, cpu)
    finally:
        shutil.rmtree(out, ignore_errors=True)
