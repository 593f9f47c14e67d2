"""The local file: its fingerprint, its whole-file sha256, and reading the spans the flows send.

A fingerprint (size, mtime and a hash of the first and last MiB) says cheaply whether the file
is still the one an earlier run started uploading. The whole-file sha256 takes one streaming
pass before the upload (it is declared when the session is created) and is remembered with the
session, so a resumed upload does not read the file twice again.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from chunkd.client._effects import FileSpan
from chunkd.client._errors import Cancelled, FileChanged

MiB = 1024 * 1024
_READ = 4 * MiB


@dataclass(frozen=True)
class Fingerprint:
    path: str
    size: int
    mtime_ns: int
    edges: str  # sha256 of the first and the last MiB

    @classmethod
    def of(cls, path: Path) -> Fingerprint:
        path = path.resolve()
        with path.open("rb") as file:
            stat = os.fstat(file.fileno())
            edges = hashlib.sha256(os.pread(file.fileno(), MiB, 0))
            if stat.st_size > MiB:
                edges.update(os.pread(file.fileno(), MiB, max(MiB, stat.st_size - MiB)))
        return cls(str(path), stat.st_size, stat.st_mtime_ns, edges.hexdigest())


def file_sha256(
    path: Path, progress: Callable[[int], None] | None = None, cancelled: Callable[[], bool] = bool
) -> str:
    """The sha256 of the whole file, read in bounded chunks."""
    digest = hashlib.sha256()
    buffer = bytearray(_READ)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as file:
        while count := file.readinto(buffer):
            digest.update(view[:count])
            if progress is not None:
                progress(count)
            if cancelled():
                raise Cancelled("cancelled while hashing the file")
    return digest.hexdigest()


def read_span(fd: int, span: FileSpan) -> tuple[bytes, Mapping[str, str]]:
    """The span's bytes and the header that declares their digest (if the flow asked)."""
    data = os.pread(fd, span.length, span.offset)
    if len(data) != span.length:
        raise FileChanged(f"the file is shorter than expected (at byte {span.offset})")
    headers = {"Content-Length": str(len(data))}
    if span.digest is not None:
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
        if span.digest == "content-digest":
            headers["Content-Digest"] = f"sha-256=:{digest}:"
        else:
            headers["Upload-Checksum"] = f"sha256 {digest}"
    return data, headers
