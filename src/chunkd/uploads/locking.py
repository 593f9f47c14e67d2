"""Per-upload locks: one writer at a time, and a newcomer may ask the holder to let go.

A phone that reconnects while its old TCP connection is still half-open must not wait for that
connection to time out. So acquiring a busy upload first *asks* the holder to release: a holder
that is reading a request body stops at once (its :meth:`Lease.receiving` block raises
``TimeoutError``), saves what it received, and returns the lock, which passes to the newcomer.
The same block also ends a body that stalls longer than the idle timeout.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from chunkd.exceptions import UploadLocked


class Lease:
    """A held lock, as the holder sees it."""

    def __init__(self) -> None:
        self.release_requested = False
        self._timeout: asyncio.Timeout | None = None
        self._idle = 0.0
        self._touched = 0.0

    def request_release(self) -> None:
        self.release_requested = True
        if self._timeout is not None:
            self._timeout.reschedule(asyncio.get_running_loop().time())

    @asynccontextmanager
    async def receiving(self, idle_timeout: float) -> AsyncIterator[Lease]:
        """Wrap the body loop: leaves with ``TimeoutError`` on a release request or a stall."""
        loop = asyncio.get_running_loop()
        self._idle = idle_timeout
        when = loop.time() if self.release_requested else loop.time() + idle_timeout
        async with asyncio.timeout_at(when) as timeout:
            self._timeout = timeout
            try:
                yield self
            finally:
                self._timeout = None

    def touch(self) -> None:
        """Bytes arrived: push the idle deadline forward (unless a release is pending).

        At most once a second (or a quarter of the idle timeout, if shorter): a body arrives in
        thousands of chunks, and rescheduling a timer for each is measurable.
        """
        if self._timeout is None or self.release_requested:
            return
        now = asyncio.get_running_loop().time()
        if now - self._touched >= min(1.0, self._idle / 4):
            self._touched = now
            self._timeout.reschedule(now + self._idle)


class Locker(ABC):
    """Opened and closed with the service (``async with locker:``); in-process lockers need
    neither, lockers backed by a server (PostgreSQL) connect and disconnect there."""

    async def open(self) -> None:  # noqa: B027 - optional hook, nothing to open by default
        """Connect to whatever coordinates the locks, if anything."""

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to close by default
        """Let go of connections; locks still held are dropped with them."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def release_all(self) -> int:
        """Ask every holder in this process to let go (shutdown); how many were asked."""
        return 0

    def active(self) -> int:
        """Locks held in this process right now (uploads being written)."""
        return 0

    @abstractmethod
    def hold(self, upload_id: str, *, wait: float) -> AbstractAsyncContextManager[Lease]:
        """An async context manager holding the upload's lock.

        If another request holds it, that request is asked to release; if it has not within
        ``wait`` seconds, :class:`UploadLocked` is raised.
        """


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    lease: Lease | None = None
    users: int = 0


class MemoryLocker(Locker):
    """Locks within one server process."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    @asynccontextmanager
    async def hold(self, upload_id: str, *, wait: float) -> AsyncIterator[Lease]:
        entry = self._entries.setdefault(upload_id, _Entry())
        entry.users += 1
        try:
            if entry.lease is not None:
                entry.lease.request_release()
            try:
                async with asyncio.timeout(wait):
                    await entry.lock.acquire()
            except TimeoutError:
                raise UploadLocked("another request holds this upload") from None
            lease = Lease()
            entry.lease = lease
            try:
                yield lease
            finally:
                entry.lease = None
                entry.lock.release()
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[upload_id]

    def release_all(self) -> int:
        """Ask every holder to let go (the server is stopping); returns how many were asked."""
        asked = 0
        for entry in self._entries.values():
            if entry.lease is not None:
                entry.lease.request_release()
                asked += 1
        return asked

    def active(self) -> int:
        return sum(1 for entry in self._entries.values() if entry.lease is not None)

    def held(self, upload_id: str) -> bool:
        entry = self._entries.get(upload_id)
        return entry is not None and entry.lock.locked()
