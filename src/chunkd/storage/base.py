"""Byte storage: where an upload's bytes live. Backends: memory (tests), local disk, S3.

The required contract is small: create a place for an upload, write bytes at an offset through
a :class:`ByteWriter`, make them durable, finish, delete. Optional abilities are separate
interfaces a backend may also implement (:class:`SupportsConcatenation`,
:class:`SupportsDownload`); the tus layer advertises extensions from what is implemented.

A backend never sees the catalog: it gets its own opaque ``handle`` back on every call.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Self

Handle = dict[str, str]
Observer = Callable[[bytes], object]


class ByteWriter(ABC):
    """Sequential writes from a starting offset, buffered in small bounded batches.

    Every byte passed to :meth:`write` is shown, in order, to each observer (used for hashing)
    off the event loop. Nothing is promised durable until :meth:`flush` returns.
    """

    @abstractmethod
    async def write(self, data: bytes) -> None: ...

    @abstractmethod
    async def flush(self, *, durable: bool) -> int:
        """Write out everything buffered; with ``durable``, sync it to stable storage.

        Returns the offset just past the last byte written.
        """

    @abstractmethod
    async def close(self) -> None:
        """Release resources; bytes not flushed may be lost (they were never acknowledged)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class Storage(ABC):
    #: The smallest part, all but the last, this backend can store as one piece (S3: 5 MiB).
    #: The service chooses REST part sizes of at least this and passes the size to
    #: :meth:`create`.
    min_part_size: int = 1
    #: Whether :meth:`SupportsDownload.read` works before :meth:`finish`. An S3 multipart
    #: upload's parts cannot be read until it is completed, so there the service finishes first
    #: and then hashes and inspects the sealed bytes (deleting them if refused).
    readable_before_finish: bool = True

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

    @abstractmethod
    async def open(self) -> None:
        """Prepare the backend (create folders, check credentials)."""

    @abstractmethod
    async def close(self) -> None:
        """Release resources."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the backend cannot be reached."""

    @abstractmethod
    async def create(
        self, upload_id: str, length: int | None, part_size: int | None = None
    ) -> Handle:
        """Make room for a new upload and return its handle.

        ``part_size`` is given for a REST session: part *n* will be written at
        ``n * part_size``, in any order and in parallel, each part whole but the last.
        """

    @abstractmethod
    def open_writer(
        self, handle: Handle, offset: int, observers: Sequence[Observer] = ()
    ) -> ByteWriter:
        """A writer placing bytes from ``offset`` on."""

    @abstractmethod
    async def finish(self, handle: Handle, length: int) -> Handle:
        """Seal a fully received upload of ``length`` bytes; returns the (possibly new) handle."""

    @abstractmethod
    async def delete(self, handle: Handle) -> int:
        """Remove the upload's bytes; returns how many bytes were reclaimed (0 if none)."""


class SupportsDownload(ABC):
    @abstractmethod
    def read(self, handle: Handle, start: int, stop: int) -> AsyncIterator[bytes]:
        """Bytes ``start`` (inclusive) to ``stop`` (exclusive), in small chunks."""

    async def feed(
        self, handle: Handle, start: int, stop: int, observers: Sequence[Observer]
    ) -> int:
        """Show bytes ``start`` to ``stop``, in order, to each observer (e.g. a hasher's
        ``update``) off the event loop; returns how many bytes there were.

        Backends that can read in a worker thread do the whole range in one hand-off, so hashing
        stored bytes does not queue behind the event loop once per chunk. A chunk may be a view
        of a reused buffer: observers must not keep it past the call.
        """
        fed = 0
        async for chunk in self.read(handle, start, stop):
            await asyncio.to_thread(show, observers, chunk)
            fed += len(chunk)
        return fed


def show(observers: Sequence[Observer], chunk: bytes) -> None:
    """Show ``chunk`` to each observer, in turn."""
    for observe in observers:
        observe(chunk)


class SupportsConcatenation(ABC):
    @abstractmethod
    async def concatenate(self, target: Handle, sources: Sequence[tuple[Handle, int]]) -> None:
        """Fill ``target`` with the first ``length`` bytes of each source, in order, durably."""
