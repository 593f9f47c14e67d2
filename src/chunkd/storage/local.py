"""Local disk: one sparse file per upload under ``<data_dir>/files/``.

Bytes are written in place with ``pwritev`` at their final offset, so finishing an upload copies
nothing; concatenation joins files in the kernel with ``os.copy_file_range``. All blocking calls
run on a dedicated thread pool, never on the event loop. A handle holds only a path relative to
the root, and every path is resolved and checked to stay inside the root before it is used.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from chunkd.storage.base import (
    ByteWriter,
    Handle,
    Observer,
    Storage,
    SupportsConcatenation,
    SupportsDownload,
)
from chunkd.storage.direct import feed_range, open_direct
from chunkd.storage.local_writer import LocalWriter

_MIN_BATCH = 64 * 1024
_READ_CHUNK = 256 * 1024
_FEED_CHUNK = 2 * 1024 * 1024  # hashing stored bytes: large reads, overlapped with hashing
_COPY_CHUNK = 1 << 30
_RESOLVED_KEPT = 4096  # resolved handle paths kept (a few hundred KiB)


class LocalStorage(Storage, SupportsDownload, SupportsConcatenation):
    def __init__(
        self,
        root: Path,
        *,
        batch_size: int = 1024 * 1024,
        batch_budget: int = 8 * 1024 * 1024,
        threads: int = 16,
        writeback: bool = True,
        direct: bool = True,
    ) -> None:
        self.root = root.resolve()
        self._writeback = writeback
        #: write (and read back for hashing) with O_DIRECT; turned off by the first file the
        #: file system refuses it for
        self.direct = direct
        # A lone upload gets big batches (fewer hand-offs to the disk thread: faster); many
        # uploads at once share a budget, so memory stays flat however many are in flight.
        self._batch_budget = batch_budget
        self._writers = 0
        self.batch_limit = batch_size
        self._files = self.root / "files"
        self._batch_size = batch_size
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._resolved: dict[str, Path] = {}  # handle path -> checked file path

    async def open(self) -> None:
        self._files.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="chunkd-io")

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def run(self, function: Any, *args: Any) -> asyncio.Future[Any]:
        if self._executor is None:
            raise RuntimeError("the storage is not open")
        return asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _path(self, handle: Handle) -> Path:
        """The file behind ``handle``, resolved and checked to be inside the data directory.

        Resolving costs a system call per path component, on the event loop, for every
        request that touches the file (a REST part: its writer, its read-back): results are
        kept for the handles in use. A symlink planted under the data directory after a
        handle was first resolved is not seen, which needs write access to it anyway."""
        key = handle["path"]
        path = self._resolved.get(key)
        if path is None:
            path = (self.root / key).resolve()
            if not path.is_relative_to(self._files):
                raise ValueError("storage handle points outside the data directory")
            if len(self._resolved) >= _RESOLVED_KEPT:
                self._resolved.pop(next(iter(self._resolved)))  # the oldest
            self._resolved[key] = path
        return path

    async def ping(self) -> None:
        if not os.access(self._files, os.W_OK):
            raise OSError(f"{self._files} is not writable")

    async def create(
        self, upload_id: str, length: int | None, part_size: int | None = None
    ) -> Handle:
        if not upload_id.isalnum():
            raise ValueError("upload ids are alphanumeric")
        handle = {"path": f"files/{upload_id[:2]}/{upload_id}"}
        await self.run(self._create, self._path(handle))
        return handle

    @staticmethod
    def _create(path: Path) -> None:
        path.parent.mkdir(exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        os.close(fd)

    def open_writer(
        self, handle: Handle, offset: int, observers: Sequence[Observer] = ()
    ) -> ByteWriter:
        writer = LocalWriter(
            self, self._path(handle), offset, observers, self._batch_size, self._writeback
        )
        self._writers += 1
        self._share()
        return writer

    @property
    def writers(self) -> int:
        """Writers open now."""
        return self._writers

    def writer_closed(self) -> None:
        """A writer was closed: the rest share its part of the write budget."""
        self._writers -= 1
        self._share()

    def _share(self) -> None:
        """Each writer's batch: the whole batch size alone, a share of the budget in company
        (read by every writer at each chunk, so a crowd shrinks the batches already open)."""
        share = self._batch_budget // max(1, self._writers)
        self.batch_limit = max(_MIN_BATCH, min(self._batch_size, share))

    async def finish(self, handle: Handle, length: int) -> Handle:
        await self.run(self._finish, self._path(handle), length)
        return handle

    @staticmethod
    def _finish(path: Path, length: int) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, length)  # drop any bytes written past the end by a refused request
            os.fsync(fd)
        finally:
            os.close(fd)

    async def delete(self, handle: Handle) -> int:
        size = int(await self.run(self._delete, self._path(handle)))
        self._resolved.pop(handle["path"], None)
        return size

    @staticmethod
    def _delete(path: Path) -> int:
        try:
            size = path.stat().st_blocks * 512
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    async def read(self, handle: Handle, start: int, stop: int) -> AsyncIterator[bytes]:
        fd = os.open(self._path(handle), os.O_RDONLY | os.O_CLOEXEC)
        try:
            position = start
            while position < stop:
                chunk: bytes = await self.run(
                    os.pread, fd, min(_READ_CHUNK, stop - position), position
                )
                if not chunk:
                    break
                position += len(chunk)
                yield chunk
        finally:
            os.close(fd)

    async def feed(
        self, handle: Handle, start: int, stop: int, observers: Sequence[Observer]
    ) -> int:
        fed: int = await self.run(self._feed, self._path(handle), start, stop, tuple(observers))
        return fed

    def _feed(self, path: Path, start: int, stop: int, observers: tuple[Observer, ...]) -> int:
        """One worker-thread pass: hashlib and crc32c release the GIL on large buffers."""
        # bytes written directly are not in the page cache: reading them back directly does
        # not fill it now
        direct = open_direct(path, os.O_RDONLY) if self.direct else None
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC) if direct is None else direct
        try:
            return feed_range(fd, start, stop, observers, _FEED_CHUNK)
        finally:
            os.close(fd)

    async def concatenate(self, target: Handle, sources: Sequence[tuple[Handle, int]]) -> None:
        paths = [(self._path(handle), length) for handle, length in sources]
        await self.run(self._concatenate, self._path(target), paths)

    @staticmethod
    def _concatenate(target: Path, sources: Sequence[tuple[Path, int]]) -> None:
        out = os.open(target, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            position = 0
            for path, length in sources:
                src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    copied = 0
                    while copied < length:
                        n = os.copy_file_range(
                            src, out, min(_COPY_CHUNK, length - copied), copied, position
                        )
                        if n == 0:
                            raise OSError(f"{path} is shorter than its recorded length")
                        copied += n
                        position += n
                finally:
                    os.close(src)
            os.fsync(out)
        finally:
            os.close(out)
