"""Bytes in process memory: the reference implementation of the storage contract, for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from chunkd.storage.base import (
    ByteWriter,
    Handle,
    Observer,
    Storage,
    SupportsConcatenation,
    SupportsDownload,
)


class _MemoryWriter(ByteWriter):
    def __init__(self, data: bytearray, offset: int, observers: Sequence[Observer]) -> None:
        self._data = data
        self._position = offset
        self._observers = observers

    async def write(self, data: bytes) -> None:
        for observe in self._observers:
            observe(data)
        end = self._position + len(data)
        if end > len(self._data):
            self._data.extend(bytes(end - len(self._data)))
        self._data[self._position : end] = data
        self._position = end

    async def flush(self, *, durable: bool) -> int:
        return self._position

    async def close(self) -> None:
        pass


class MemoryStorage(Storage, SupportsDownload, SupportsConcatenation):
    def __init__(self) -> None:
        self.blobs: dict[str, bytearray] = {}

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    async def create(
        self, upload_id: str, length: int | None, part_size: int | None = None
    ) -> Handle:
        self.blobs[upload_id] = bytearray()
        return {"key": upload_id}

    def open_writer(
        self, handle: Handle, offset: int, observers: Sequence[Observer] = ()
    ) -> ByteWriter:
        return _MemoryWriter(self.blobs[handle["key"]], offset, observers)

    async def finish(self, handle: Handle, length: int) -> Handle:
        del self.blobs[handle["key"]][length:]
        return handle

    async def delete(self, handle: Handle) -> int:
        blob = self.blobs.pop(handle["key"], None)
        return 0 if blob is None else len(blob)

    async def read(self, handle: Handle, start: int, stop: int) -> AsyncIterator[bytes]:
        data = self.blobs[handle["key"]]
        for position in range(start, stop, 65536):
            yield bytes(data[position : min(stop, position + 65536)])

    async def concatenate(self, target: Handle, sources: Sequence[tuple[Handle, int]]) -> None:
        joined = self.blobs[target["key"]]
        joined.clear()
        for handle, length in sources:
            joined.extend(self.blobs[handle["key"]][:length])
