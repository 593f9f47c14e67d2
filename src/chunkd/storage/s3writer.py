"""Writing into an S3 multipart upload: parts gathered in spool files, tails, concatenation.

See :mod:`chunkd.storage.s3` for the part mapping and the tail objects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from chunkd.storage.base import ByteWriter, Handle, Observer
from chunkd.storage.s3api import NoSuchKey, crc32c_base64

if TYPE_CHECKING:
    from chunkd.storage.s3 import S3Storage, Spool


class S3Writer(ByteWriter):
    """Sequential bytes from ``offset``: each whole part is uploaded (while the next one is
    gathered); an unfinished one is put as a tail object on ``flush``."""

    def __init__(
        self, storage: S3Storage, handle: Handle, offset: int, observers: Sequence[Observer]
    ) -> None:
        self._storage = storage
        self._key, self._upload = handle["key"], handle["upload"]
        self._tails = handle["tails"]
        self._size = int(handle["part_size"])
        self._length = int(handle["length"]) if "length" in handle else None
        self._observers = tuple(observers)
        self._position = offset
        self._index = offset // self._size  # the part being gathered, from 0
        self._resume = offset % self._size  # its bytes before ``offset``, in its tail object
        self._spool: Spool | None = None
        self._dirty = False  # the spool holds bytes its tail object does not
        self._batch: list[bytes] = []
        self._batched = 0
        self._absorbing: asyncio.Future[None] | None = None  # a batch going to the spool
        self._pending: asyncio.Future[None] | None = None  # the last part's upload

    def _part_end(self) -> int:
        end = (self._index + 1) * self._size
        return end if self._length is None else min(end, self._length)

    async def write(self, data: bytes) -> None:
        while data:
            end = self._part_end()
            if self._position >= end:  # past a declared length: a refused request
                self._take(data)
                data = b""
            else:
                piece, data = data[: end - self._position], data[end - self._position :]
                self._take(piece)
                if self._position == end:
                    await self._seal()
                    continue
            if self._batched >= self._storage.batch_size:
                await self._submit()

    def _take(self, chunk: bytes) -> None:
        self._batch.append(chunk)
        self._batched += len(chunk)
        self._position += len(chunk)

    async def _open_spool(self) -> Spool:
        """The spool of the current part, with its prefix from the tail object on a resume.

        Kept only once whole, so a load cut short by a cancellation is simply done again.
        """
        from chunkd.storage.s3 import MissingBytes, Spool

        if self._spool is None:
            spool = Spool(self._storage.spool_dir)
            if self._resume:
                tail = f"{self._tails}{self._index + 1}"
                try:
                    async for chunk in self._storage.api.get_object(tail, 0, self._resume - 1):
                        await self._storage.run(spool.append, chunk)
                except NoSuchKey:
                    pass
                except BaseException:
                    spool.close()
                    raise
                if spool.size != self._resume:
                    spool.close()
                    raise MissingBytes(f"{self._key}: {self._resume} bytes of {tail} are gone")
                self._resume = 0
            self._spool = spool
        return self._spool

    async def _submit(self) -> None:
        await self._absorbed()
        if not self._batch:
            return
        first = self._position - self._batched  # a batch is all below a length or all past it
        storable = self._length is None or first < self._length
        spool = await self._open_spool() if storable else None
        batch, self._batch, self._batched = self._batch, [], 0
        self._dirty = self._dirty or spool is not None
        self._absorbing = self._storage.run(self._absorb, spool, batch)
        await self._absorbed()

    async def _absorbed(self) -> None:
        """Wait for the batch being written to the spool. Shielded, like every wait here: if
        the request is cancelled meanwhile (a release request, an idle timeout), the work stays
        tracked and ``flush`` still waits for it, so nothing counted is left behind."""
        if self._absorbing is not None:
            await asyncio.shield(self._absorbing)
            self._absorbing = None

    def _absorb(self, spool: Spool | None, batch: list[bytes]) -> None:
        for observe in self._observers:
            for chunk in batch:
                observe(chunk)
        if spool is not None:
            for chunk in batch:
                spool.append(chunk)

    async def _seal(self) -> None:
        """The current part is whole: upload it while the next one is gathered.

        The upload task is created before any wait, so a cancellation cannot drop the part;
        it waits for the previous part, and so does this call: one upload in flight.
        """
        await self._submit()
        spool, number = await self._open_spool(), self._index + 1
        self._spool, self._dirty, self._index = None, False, self._index + 1
        previous = self._pending
        self._pending = asyncio.ensure_future(self._upload_part(previous, spool, number))
        if previous is not None:
            await asyncio.shield(previous)

    async def _upload_part(
        self, previous: asyncio.Future[None] | None, spool: Spool, number: int
    ) -> None:
        from chunkd.storage.s3 import S3_MAX_PARTS

        try:
            if previous is not None:
                await previous
            if number > S3_MAX_PARTS:
                raise ValueError(f"{self._key}: part {number} is over S3's {S3_MAX_PARTS}")
            storage = self._storage
            crc = crc32c_base64(spool.crc) if storage.checksums else None
            body = await storage.run(spool.rewound)
            await storage.api.upload_part(self._key, self._upload, number, body, crc)
        finally:
            spool.close()

    async def _settle(self) -> None:
        await self._absorbed()
        if self._pending is not None:
            await asyncio.shield(self._pending)
            self._pending = None

    async def flush(self, *, durable: bool) -> int:
        await self._submit()
        if self._spool is not None and self._position == self._part_end():
            await self._seal()  # whole, but a cancellation came between gathering and sealing
        await self._settle()
        spool = self._spool
        if spool is not None and self._dirty:
            storage = self._storage
            crc = crc32c_base64(spool.crc) if storage.checksums else None
            body = await storage.run(spool.rewound)
            await storage.api.put_object(f"{self._tails}{self._index + 1}", body, crc)
            self._dirty = False
        return self._position

    async def close(self) -> None:
        try:
            await self._settle()
        finally:
            if self._spool is not None:
                self._spool.close()
                self._spool = None


async def concatenate(
    storage: S3Storage, target: Handle, sources: Sequence[tuple[Handle, int]]
) -> None:
    """Fill ``target`` part by part: server-side copies where a part lies in one source."""
    from chunkd.storage.s3 import S3_MAX_PARTS, Spool

    spans: list[tuple[str, int, int]] = []  # (source key, start in target, length)
    total = 0
    for handle, length in sources:
        if "upload" in handle:
            raise ValueError("only finished uploads can be concatenated")
        spans.append((handle["key"], total, length))
        total += length
    size = int(target["part_size"])
    count = -(-total // size)
    if count > S3_MAX_PARTS:
        raise ValueError(f"{total} bytes in parts of {size} would need over {S3_MAX_PARTS}")
    api, limit = storage.api, asyncio.Semaphore(4)

    async def fill(index: int) -> None:
        start, stop = index * size, min((index + 1) * size, total)
        pieces = [
            (key, max(start, at) - at, min(stop, at + length) - at)
            for key, at, length in spans
            if at < stop and at + length > start and length
        ]
        async with limit:
            if len(pieces) == 1:
                key, first, end = pieces[0]
                await api.upload_part_copy(
                    target["key"], target["upload"], index + 1, key, first, end - 1
                )
                return
            spool = Spool(storage.spool_dir)
            try:
                for key, first, end in pieces:
                    async for chunk in api.get_object(key, first, end - 1):
                        await storage.run(spool.append, chunk)
                crc = crc32c_base64(spool.crc) if storage.checksums else None
                body = await storage.run(spool.rewound)
                await api.upload_part(target["key"], target["upload"], index + 1, body, crc)
            finally:
                spool.close()

    await asyncio.gather(*(fill(index) for index in range(count)))
