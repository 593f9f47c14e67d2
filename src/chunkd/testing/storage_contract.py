"""The behaviour every storage backend must show. Subclass and provide a ``storage`` fixture."""

from __future__ import annotations

import hashlib
import os
import secrets

from chunkd.storage.base import Storage, SupportsConcatenation, SupportsDownload


async def read_all(storage: Storage, handle: dict[str, str], start: int, stop: int) -> bytes:
    assert isinstance(storage, SupportsDownload)
    return b"".join([chunk async for chunk in storage.read(handle, start, stop)])


async def write(storage: Storage, handle: dict[str, str], offset: int, data: bytes) -> int:
    async with storage.open_writer(handle, offset) as writer:
        for start in range(0, len(data), 100_000):
            await writer.write(data[start : start + 100_000])
        return await writer.flush(durable=True)


class StorageContract:
    async def test_write_then_read_back(self, storage: Storage) -> None:
        handle = await storage.create(secrets.token_hex(16), 3_000_000)
        data = os.urandom(3_000_000)
        assert await write(storage, handle, 0, data) == len(data)
        handle = await storage.finish(handle, len(data))
        assert await read_all(storage, handle, 0, len(data)) == data
        assert await read_all(storage, handle, 1000, 1010) == data[1000:1010]

    async def test_appends_continue_at_their_offset(self, storage: Storage) -> None:
        handle = await storage.create(secrets.token_hex(16), None)
        first, second = os.urandom(700_000), os.urandom(1_300_001)
        await write(storage, handle, 0, first)
        await write(storage, handle, len(first), second)
        handle = await storage.finish(handle, len(first) + len(second))
        assert await read_all(storage, handle, 0, 2_000_001) == first + second

    async def test_rewrite_after_a_refused_request_and_finish_truncates(
        self, storage: Storage
    ) -> None:
        handle = await storage.create(secrets.token_hex(16), 10)
        await write(storage, handle, 0, b"01234")
        await write(storage, handle, 5, b"XXXXXXXXXXXXXXX")  # refused by the service, never acked
        await write(storage, handle, 5, b"56789")
        handle = await storage.finish(handle, 10)
        assert await read_all(storage, handle, 0, 10) == b"0123456789"

    async def test_observers_see_every_byte_in_order(self, storage: Storage) -> None:
        handle = await storage.create(secrets.token_hex(16), None)
        data = os.urandom(2_500_000)
        hasher = hashlib.sha256()
        async with storage.open_writer(handle, 0, [hasher.update]) as writer:
            for start in range(0, len(data), 65_536):
                await writer.write(data[start : start + 65_536])
            await writer.flush(durable=False)
        assert hasher.digest() == hashlib.sha256(data).digest()

    async def test_feed_shows_a_stored_range_to_each_observer(self, storage: Storage) -> None:
        if not isinstance(storage, SupportsDownload):
            return
        data = os.urandom(3_000_001)
        handle = await storage.create(secrets.token_hex(16), len(data))
        await write(storage, handle, 0, data)
        handle = await storage.finish(handle, len(data))
        whole, tail = hashlib.sha256(), hashlib.md5()
        assert await storage.feed(handle, 0, len(data), [whole.update]) == len(data)
        assert whole.digest() == hashlib.sha256(data).digest()
        fed = await storage.feed(handle, 1_048_575, 2_100_000, [tail.update])
        assert fed == 2_100_000 - 1_048_575
        assert tail.digest() == hashlib.md5(data[1_048_575:2_100_000]).digest()
        assert await storage.feed(handle, 5, 5, [whole.update]) == 0

    async def test_many_tiny_writes(self, storage: Storage) -> None:
        handle = await storage.create(secrets.token_hex(16), None)
        data = os.urandom(5000)
        async with storage.open_writer(handle, 0) as writer:
            for byte in range(len(data)):
                await writer.write(data[byte : byte + 1])
            assert await writer.flush(durable=True) == 5000
        handle = await storage.finish(handle, 5000)
        assert await read_all(storage, handle, 0, 5000) == data

    async def test_delete_reclaims(self, storage: Storage) -> None:
        handle = await storage.create(secrets.token_hex(16), None)
        await write(storage, handle, 0, os.urandom(100_000))
        assert await storage.delete(handle) > 0
        assert await storage.delete(handle) == 0

    async def test_concatenate_joins_prefixes_in_order(self, storage: Storage) -> None:
        assert isinstance(storage, SupportsConcatenation)
        parts = [os.urandom(n) for n in (1000, 250_000, 1)]
        handles = []
        for data in parts:
            handle = await storage.create(secrets.token_hex(16), len(data))
            await write(storage, handle, 0, data)
            handles.append((await storage.finish(handle, len(data)), len(data)))
        target = await storage.create(secrets.token_hex(16), sum(map(len, parts)))
        await storage.concatenate(target, handles)
        target = await storage.finish(target, sum(map(len, parts)))
        assert await read_all(storage, target, 0, sum(map(len, parts))) == b"".join(parts)

    async def test_ping(self, storage: Storage) -> None:
        await storage.ping()
