"""The local file: its fingerprint, and reading it for the flows, hashed on the way.

A fingerprint (size, mtime and a hash of the first and last MiB) says cheaply whether the file
is still the one an earlier run started uploading. A :class:`FileReader` reads the file from
disk once, in order: that one pass computes the whole-file sha256 (declared when completing)
and each span's crc32c (sent in the span's header); sending a span then takes it from the
page cache the pass just filled: by ``sendfile`` (``Client``, see ``_sendfile``) or read
again 256 KiB at a time (``AsyncClient``, TLS).
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import crc32c

from chunkd.client._effects import FileSpan
from chunkd.client._errors import Cancelled, FileChanged
from chunkd.protocol.crc_combine import crc32c_combine

MiB = 1024 * 1024
_READ = 4 * MiB  # the sequential pass
#: Sending reads the span in pieces this big. Each is a new ``bytes``: at 1 MiB glibc served
#: every one with a fresh ``mmap`` in the part threads (strace: an mmap/munmap pair per piece),
#: faulting 256 zeroed pages in each time, 274 thousand faults per GiB; 256 KiB pieces are
#: reused from the heap (11 thousand), 12 % less client CPU.
_CHUNK = 256 * 1024


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


class FileReader:
    """The file as the flows send it. Thread-safe: parts are read from several threads.

    A worker thread makes the one pass over the file, block by block (a block is a part: the
    spans the flows send are parts, or end on a part boundary), feeding the whole-file sha256
    and keeping each block's crc32c. It runs a few blocks ahead of the furthest span asked for,
    so a span's checksum is ready when it is sent and its bytes are still in the page cache.
    A span of several whole blocks (a tus PATCH grown past one part) combines their crcs; a
    span that does not start on a block (the first after a tus resume) is read and checked
    alone.
    """

    def __init__(
        self,
        fd: int,
        size: int,
        block: int,
        *,
        ahead: int = 4,
        cancelled: Callable[[], bool] = bool,
    ) -> None:
        self._fd, self._size, self._block = fd, size, max(1, block)
        self._ahead, self._cancelled = max(1, ahead), cancelled
        self._blocks = -(-size // self._block)
        self._changed = threading.Condition()
        self._crcs: dict[int, int] = {}  # block -> crc32c
        self._wanted = 0  # blocks the pass may hash before it waits for the flows
        self._hashed = 0  # blocks hashed so far
        self._sha256 = hashlib.sha256().hexdigest() if size == 0 else ""
        self._failure: BaseException | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def fd(self) -> int:
        """The open file (spans may be sent from it by the kernel, see ``_sendfile``)."""
        return self._fd

    def close(self) -> None:
        """Stop the pass (before the file descriptor is closed)."""
        with self._changed:
            self._closed = True
            if self._failure is None:
                self._failure = Cancelled("the file was closed")
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join()

    def checksum(self, span: FileSpan) -> Mapping[str, str]:
        """The header declaring the span's crc32c, if the flow asked for one."""
        if span.digest is None:
            return {}
        value = base64.b64encode(self._crc32c(span).to_bytes(4, "big")).decode()
        if span.digest == "content-digest":
            return {"X-Checksum-Crc32c": value}
        return {"Upload-Checksum": f"crc32c {value}"}

    def sha256(self) -> str:
        """The whole file's sha256 (finishing the pass over blocks never sent)."""
        self._wait(self._blocks)
        return self._sha256

    def _crc32c(self, span: FileSpan) -> int:
        first, rest = divmod(span.offset, self._block)
        end = span.offset + span.length
        if rest == 0 and span.length > 0 and (end % self._block == 0 or end == self._size):
            last = -(-end // self._block)  # whole blocks: their crcs, combined
            self._wait(last)
            value = self._crcs[first]
            for index in range(first + 1, last):
                length = min(self._block, self._size - index * self._block)
                value = crc32c_combine(value, self._crcs[index], length)
            return value
        crc = crc32c.CRC32CHash()
        for chunk in self.chunks(span):
            crc.update(chunk)
        return int.from_bytes(crc.digest(), "big")

    def _wait(self, blocks: int) -> None:
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(target=self._pass, name="chunkd-hash", daemon=True)
                self._thread.start()
            if blocks > self._wanted:
                self._wanted = blocks
                self._changed.notify_all()
            while self._hashed < blocks and self._failure is None:
                self._changed.wait()
            if self._hashed < blocks:  # the pass failed (or stopped) before reaching them
                assert self._failure is not None
                raise self._failure

    def _pass(self) -> None:
        whole = hashlib.sha256()
        buffer = bytearray(min(_READ, self._block))
        view = memoryview(buffer)
        try:
            for index in range(self._blocks):
                with self._changed:
                    while index >= self._wanted + self._ahead and not self._closed:
                        self._changed.wait()
                    if self._closed:
                        return
                crc = crc32c.CRC32CHash()
                position = index * self._block
                stop = min(self._size, position + self._block)
                while position < stop:
                    if self._cancelled() or self._closed:
                        raise Cancelled("the upload was cancelled")
                    count = os.preadv(
                        self._fd, [view[: min(len(buffer), stop - position)]], position
                    )
                    if count <= 0:
                        raise FileChanged(f"the file is shorter than expected (at byte {position})")
                    whole.update(view[:count])
                    crc.update(view[:count])
                    position += count
                with self._changed:
                    self._crcs[index] = int.from_bytes(crc.digest(), "big")
                    self._hashed = index + 1
                    if self._hashed == self._blocks:
                        self._sha256 = whole.hexdigest()
                    self._changed.notify_all()
        except BaseException as error:  # handed to whoever waits for the pass
            with self._changed:
                self._failure = error
                self._changed.notify_all()

    def chunks(self, span: FileSpan) -> Iterator[bytes]:
        """The span's bytes, ``_CHUNK`` at a time."""
        position, stop = span.offset, span.offset + span.length
        while position < stop:
            chunk = os.pread(self._fd, min(_CHUNK, stop - position), position)
            if not chunk:
                raise FileChanged(f"the file is shorter than expected (at byte {position})")
            position += len(chunk)
            yield chunk
