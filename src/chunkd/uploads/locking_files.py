"""Per-upload locks across the worker processes of one server: POSIX record locks.

The same promise as :class:`~chunkd.uploads.locking.MemoryLocker` — one holder per upload, and
a newcomer asks the holder to release — when the holder may be another worker process
(``chunkd serve --workers N``) on the same data directory:

- Holding an upload's lock is holding a write lock on one byte of ``<data>/run/locks``, at an
  offset hashed from the upload id (62 bits: collisions are not a concern). The kernel drops a
  process's record locks when it exits, ``kill -9`` included: no lease to expire.
- A newcomer that finds the byte locked asks the kernel who holds it (``F_GETLK`` names the
  process) and sends that worker a ``release`` message (:mod:`chunkd.uploads.peers`); the
  holder's body loop stops, saves what arrived and lets go. The newcomer retries on a short
  back-off, asking again each time, until it holds the lock or ``wait`` has passed
  (:class:`UploadLocked`).
- Within one worker, requests for the same upload first meet in a
  :class:`~chunkd.uploads.locking.MemoryLocker`: record locks belong to the process, so two
  requests of one worker must never both take the byte.

The lock file is opened once per worker and never closed while locks are held (closing any
descriptor of a file drops all of the process's locks on it).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import os
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from chunkd.exceptions import UploadLocked
from chunkd.uploads.locking import Lease, Locker, MemoryLocker
from chunkd.uploads.peers import Peers

_FLOCK = "hhqqi4x"  # struct flock on Linux: type, whence, start, len, pid (and padding)
_BUSY = (errno.EACCES, errno.EAGAIN)


def lock_offset(upload_id: str) -> int:
    """The byte of the lock file that stands for the upload."""
    digest = hashlib.sha256(f"upload:{upload_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 62) - 1)


def holder_of(fd: int, offset: int) -> int | None:
    """The process holding a lock on byte ``offset`` of ``fd``'s file (not this one), if any."""
    query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
    kind, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))
    return None if kind == fcntl.F_UNLCK else pid


class FileLocker(Locker):
    """Upload locks shared by the workers of one data directory.

    ``retry_interval`` is the first back-off between attempts of a waiting newcomer; it
    doubles up to ``max_retry_interval``.
    """

    def __init__(
        self,
        path: Path,
        peers: Peers,
        *,
        retry_interval: float = 0.01,
        max_retry_interval: float = 0.1,
    ) -> None:
        self._path = path
        self.peers = peers
        self._retry_interval = retry_interval
        self._max_retry_interval = max_retry_interval
        self._local = MemoryLocker()
        self._held: dict[str, Lease] = {}
        self._fd: int | None = None

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.peers.on("release", self._on_release)
        await self.peers.open()

    async def close(self) -> None:
        await self.peers.close()
        if self._fd is not None:
            os.close(self._fd)  # drops any lock still held
            self._fd = None

    def release_all(self) -> int:
        return self._local.release_all()

    def active(self) -> int:
        return self._local.active()

    def held(self, upload_id: str) -> bool:
        return self._local.held(upload_id)

    @asynccontextmanager
    async def hold(self, upload_id: str, *, wait: float) -> AsyncIterator[Lease]:
        if self._fd is None:
            raise RuntimeError("the locker is not open")
        fd, offset = self._fd, lock_offset(upload_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        async with self._local.hold(upload_id, wait=wait) as lease:
            interval = self._retry_interval
            while not self._try_lock(fd, offset):
                holder = holder_of(fd, offset)
                if holder is not None:
                    self.peers.send(holder, {"kind": "release", "upload": upload_id})
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise UploadLocked("another request holds this upload")
                await asyncio.sleep(min(interval, remaining))
                interval = min(interval * 2, self._max_retry_interval)
            self._held[upload_id] = lease
            try:
                yield lease
            finally:
                del self._held[upload_id]
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)

    @staticmethod
    def _try_lock(fd: int, offset: int) -> bool:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
        except OSError as error:
            if error.errno in _BUSY:
                return False
            raise
        return True

    def _on_release(self, message: dict[str, object]) -> None:
        lease = self._held.get(str(message.get("upload")))
        if lease is not None:
            lease.request_release()
