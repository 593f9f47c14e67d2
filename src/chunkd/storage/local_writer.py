"""What writes one request's bytes to an upload's file on local disk (:class:`LocalWriter`).

Chunks are collected into batches on the event loop and each batch is written (and shown to
the observers that hash it) on one of the store's disk threads, with ``O_DIRECT`` where the
file system takes it (``storage.direct``) and through the page cache where not.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from chunkd.storage.base import ByteWriter, Observer
from chunkd.storage.direct import (
    DirectStream,
    open_direct,
    pwrite_all,
    show_all,
    show_beside,
)

if TYPE_CHECKING:
    from chunkd.storage.local import LocalStorage

_IOV_MAX = 512  # chunks per pwritev; well under Linux's IOV_MAX of 1024
# With at most this many writers open, a batch is hashed on a helper thread while it is
# written: one upload went 30 % faster. With more, their threads already keep the cores busy
# and the extra hand-off costs (measured, sha256: 2 and 4 uploads at once even, 16 -5 %,
# 32 -5 to -10 %).
_OVERLAP_WRITERS = 2
_SYNC_FILE_RANGE_WRITE = 2


def _load_sync_file_range() -> Callable[[int, int, int], None] | None:
    """``sync_file_range(2)`` from libc (Linux), which ``os`` does not expose."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    call.restype = ctypes.c_int

    def start_writeback(fd: int, offset: int, count: int) -> None:
        call(fd, offset, count, _SYNC_FILE_RANGE_WRITE)  # a hint: failure changes nothing

    return start_writeback


_start_writeback = _load_sync_file_range()


class LocalWriter(ByteWriter):
    """Batches incoming chunks and writes each batch (and feeds observers) in a worker thread.

    While one batch is being written and hashed, the next one is collected on the event loop:
    at most two batches per upload are in memory. With few writers open, a batch is hashed
    on a helper thread while the worker writes it (``direct.show_beside``): with sha256,
    8 MiB PATCHes went from 406-451 to 530-585 MB/s and one 1 GiB PATCH from 384-566 to
    696-761. With direct I/O (see ``storage.direct``) the batches bypass the page cache.
    """

    def __init__(
        self,
        storage: LocalStorage,
        path: Path,
        offset: int,
        observers: Sequence[Observer],
        batch_size: int,
        writeback: bool,
    ) -> None:
        self._storage = storage
        self._fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        self._direct = open_direct(path, os.O_WRONLY) if storage.direct else None
        if self._direct is None:
            storage.direct = False  # the file system refused it: the page cache for all
        self._stream = DirectStream(self._fd, self._direct, offset) if self._direct else None
        # with direct I/O the bytes are on the device already: nothing to start writing back
        self._writeback = writeback and _start_writeback is not None and self._stream is None
        self._position = offset
        self._observers = tuple(observers)
        self._batch_size = batch_size
        self._batch: list[bytes] = []
        self._batched = 0
        self._pending: asyncio.Future[None] | None = None

    async def write(self, data: bytes) -> None:
        if not data:
            return
        self._batch.append(data)
        self._batched += len(data)
        if self._batched >= self._storage.batch_limit or len(self._batch) >= _IOV_MAX:
            await self._submit()

    async def _submit(self) -> None:
        await self._settle()
        if not self._batch:
            return
        self._pending = self._storage.run(self._write_batch, *self._take())

    def _take(self) -> tuple[list[bytes], int]:
        """The batch collected so far and where it goes; the next one starts after it."""
        batch, offset = self._batch, self._position
        self._position += self._batched
        self._batch, self._batched = [], 0
        return batch, offset

    async def _settle(self) -> None:
        """Wait for the batch in flight. Shielded: if the request is cancelled meanwhile (a
        release request, an idle timeout), the write stays tracked so ``flush`` still waits
        for it before syncing — nothing is acknowledged that is not on disk."""
        if self._pending is not None:
            await asyncio.shield(self._pending)
            self._pending = None

    def _write_batch(
        self, batch: list[bytes], offset: int, then: Callable[[], None] | None = None
    ) -> None:
        """Write (and hash) a batch; ``then`` runs once it is written, while its hashing may
        still be going on beside it."""
        showing = None
        if self._storage.writers > _OVERLAP_WRITERS:
            show_all(self._observers, batch)  # many writers: the threads are busy already
        else:
            showing = show_beside(self._observers, batch)
        try:
            if batch:
                self._write_out(batch, offset)
            if then is not None:
                then()
        finally:
            if showing is not None:
                showing.result()

    def _write_out(self, batch: list[bytes], offset: int) -> None:
        if self._stream is not None:
            self._stream.write(batch)
            return
        written = os.pwritev(self._fd, batch, offset)
        total = sum(len(chunk) for chunk in batch)
        if written < total:  # short write: finish the rest the slow way
            pwrite_all(self._fd, b"".join(batch)[written:], offset + written)
        if self._writeback and _start_writeback is not None:
            # Start writing this batch to disk now, while the next one is received, so the
            # fdatasync that acknowledges the request waits only for the tail.
            _start_writeback(self._fd, offset, total)

    async def flush(self, *, durable: bool) -> int:
        await self._settle()
        batch, offset = self._take()
        # The last batch, the bytes short of a block carried so far and the sync in one trip
        # to a disk thread, the last batch hashed beside the sync rather than before it: this
        # is what a request waits for after its last byte.
        end = functools.partial(self._end, durable)
        self._pending = self._storage.run(self._write_batch, batch, offset, end)
        await self._settle()
        return self._position

    def _end(self, durable: bool) -> None:
        if self._stream is not None:
            self._stream.end()
        if durable:
            os.fdatasync(self._fd)

    async def close(self) -> None:
        try:
            await self._settle()
        finally:
            os.close(self._fd)
            if self._direct is not None:
                os.close(self._direct)
            self._storage.writer_closed()
