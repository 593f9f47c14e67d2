"""Direct I/O: aligned blocks past the page cache, heads and tails through it, same bytes."""

from __future__ import annotations

import hashlib
import os
import random
import threading
from pathlib import Path

import pytest

from chunkd.storage import direct, local, local_writer
from chunkd.storage.direct import (
    ALIGN,
    BufferPool,
    DirectStream,
    feed_range,
    open_direct,
    show_beside,
)
from chunkd.storage.local import LocalStorage


def _chunks(rng: random.Random, data: bytes, sizes: tuple[int, ...]) -> list[bytes]:
    out, at = [], 0
    while at < len(data):
        size = rng.choice(sizes)
        out.append(data[at : at + size])
        at += size
    return out


def _stream(path: Path, offset: int) -> tuple[int, int, DirectStream]:
    buffered = os.open(path, os.O_WRONLY)
    direct = open_direct(path, os.O_WRONLY)
    assert direct is not None, "the test directory's file system refuses O_DIRECT"
    return buffered, direct, DirectStream(buffered, direct, offset)


@pytest.mark.parametrize("offset", [0, 1, ALIGN - 1, ALIGN, 3 * ALIGN + 17, 1 << 20])
@pytest.mark.parametrize("sizes", [(1,), (7, 4096, 5000), (65536, 131072, 100_000)])
def test_a_stream_lands_byte_for_byte_around_what_was_there(
    tmp_path: Path, offset: int, sizes: tuple[int, ...]
) -> None:
    rng = random.Random(f"{offset}-{sizes}")
    before = rng.randbytes(offset + 3 * ALIGN + 5)
    path = tmp_path / "upload"
    path.write_bytes(before)
    data = rng.randbytes(150_000 if sizes == (1,) else 700_000)
    buffered, direct, stream = _stream(path, offset)
    try:
        chunks = _chunks(rng, data, sizes)
        for start in range(0, len(chunks), 37):  # batches of a few chunks, in order
            stream.write(chunks[start : start + 37])
        stream.end()
    finally:
        os.close(buffered)
        os.close(direct)
    stored = path.read_bytes()
    expected = before[:offset] + data + before[offset + len(data) :]
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(expected).hexdigest()


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview, "read-only view"])
def test_a_batch_of_a_chunk_or_two_is_copied_without_the_gil(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: object
) -> None:
    """Many writers at once: each batch is a chunk or so, copied by ``ctypes.memmove`` (which
    releases the GIL), except from a read-only view; a batch of many chunks holds it."""
    copies: list[int] = []
    memmove = direct.ctypes.memmove

    def counting(dst: int, src: object, count: int) -> int:
        copies.append(count)
        return int(memmove(dst, src, count))

    monkeypatch.setattr(direct.ctypes, "memmove", counting)
    rng = random.Random(str(kind))
    data = rng.randbytes(3 * 256 * 1024 + 100)

    def as_kind(piece: bytes) -> bytes:
        if kind == "read-only view":
            return memoryview(piece)  # type: ignore[return-value]
        if kind is memoryview:
            return memoryview(bytearray(piece))  # type: ignore[return-value]
        return kind(piece)  # type: ignore[no-any-return, operator]

    path = tmp_path / "upload"
    path.touch()
    buffered, direct_fd, stream = _stream(path, 0)
    try:
        stream.write([as_kind(data[: 256 * 1024])])  # one chunk
        stream.write([as_kind(data[256 * 1024 : 300_000]), as_kind(data[300_000 : 512 * 1024])])
        many = data[512 * 1024 :]
        stream.write([as_kind(many[at : at + 1000]) for at in range(0, len(many), 1000)])
        stream.end()
    finally:
        os.close(buffered)
        os.close(direct_fd)
    assert path.read_bytes() == data
    if kind == "read-only view":
        assert copies == []
    else:
        assert sum(copies) == 512 * 1024  # the two small batches; not the one of 263 chunks


def test_bytes_carried_past_the_last_block_are_written_by_end(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    path.touch()
    buffered, direct, stream = _stream(path, 0)
    try:
        stream.write([b"x" * (ALIGN + 10)])
        assert path.stat().st_size == ALIGN  # the 10 bytes wait for the next batch or the end
        stream.end()
        stream.end()  # nothing left: a second end writes nothing
    finally:
        os.close(buffered)
        os.close(direct)
    assert path.read_bytes() == b"x" * (ALIGN + 10)


@pytest.mark.parametrize(
    ("start", "stop"), [(0, 0), (0, 1), (5, 9000), (ALIGN, 3 * ALIGN), (12345, 300_001)]
)
def test_feeding_shows_exactly_the_range(tmp_path: Path, start: int, stop: int) -> None:
    data = random.Random(7).randbytes(300_001)
    path = tmp_path / "stored"
    path.write_bytes(data)
    fd = open_direct(path, os.O_RDONLY)
    assert fd is not None
    seen = hashlib.sha256()
    try:
        fed = feed_range(fd, start, stop, [seen.update], 64 * 1024)
    finally:
        os.close(fd)
    assert fed == stop - start
    assert seen.hexdigest() == hashlib.sha256(data[start:stop]).hexdigest()


def test_feeding_past_the_end_shows_what_there_is(tmp_path: Path) -> None:
    path = tmp_path / "stored"
    path.write_bytes(b"abc" * 2000)
    fd = open_direct(path, os.O_RDONLY)
    assert fd is not None
    seen: list[bytes] = []
    try:
        fed = feed_range(fd, 10, 10_000, [lambda chunk: seen.append(bytes(chunk))], ALIGN)
    finally:
        os.close(fd)
    assert fed == 6000 - 10
    assert b"".join(seen) == (b"abc" * 2000)[10:]


def test_buffers_are_aligned_shared_and_bounded() -> None:
    pool = BufferPool(keep=(4 << 20) + (400 << 10))
    first = pool.take(1000)
    assert len(first) % ALIGN == 0 and len(first) >= 1000
    pool.give(first)
    assert pool.take(2000) is first  # fits: reused, whichever thread asks
    big = pool.take(2 << 20)
    pool.give(first)
    pool.give(big)
    assert pool.take(1 << 20) is big  # a bit smaller: fits
    pool.give(big)
    small = pool.take(1000)
    assert small is first  # far smaller than big: the small one
    pool.give(small)
    third = pool.take(2 << 20 | 1)
    pool.give(third)  # more than keep: the buffer given back longest ago (big) goes
    assert pool.kept == (256 << 10) + (2 << 20) + (256 << 10)  # first and the third
    assert big.closed and not first.closed and not third.closed


def test_larger_buffers_kept_from_before_do_not_crowd_out_the_ones_in_use() -> None:
    # two read-backs at once filled the pool with 4 MiB buffers, which a 1 MiB write does not
    # fit within 4x: the write buffers must still be kept and reused, not mapped each time
    pool = BufferPool(keep=8 << 20)
    reads = [pool.take(4 << 20), pool.take(4 << 20)]
    for buffer in reads:
        pool.give(buffer)
    write = pool.take(1 << 20)
    pool.give(write)
    for _ in range(5):
        again = pool.take(1 << 20)
        assert again is write
        pool.give(again)
    assert pool.kept <= 8 << 20 and reads[0].closed


def test_a_buffer_still_viewed_is_dropped_without_an_error() -> None:
    pool = BufferPool(keep=0)
    buffer = pool.take(1000)
    view = memoryview(buffer)[:10]  # as a failed write's traceback may still hold
    pool.give(buffer)  # over keep: dropped, not closed under the view
    assert pool.kept == 0 and not buffer.closed
    view.release()


async def test_the_local_store_writes_and_hashes_directly(tmp_path: Path) -> None:
    data = random.Random(3).randbytes(3 * (1 << 20) + 123)
    async with LocalStorage(tmp_path, batch_size=256 * 1024) as storage:
        handle = await storage.create("abc123", len(data))
        async with storage.open_writer(handle, 0) as writer:
            for at in range(0, len(data), 100_000):
                await writer.write(data[at : at + 100_000])
            assert await writer.flush(durable=True) == len(data)
        assert storage.direct  # this file system takes O_DIRECT, and it was used
        seen = hashlib.sha256()
        assert await storage.feed(handle, 17, len(data), [seen.update]) == len(data) - 17
        assert seen.hexdigest() == hashlib.sha256(data[17:]).hexdigest()
        read = b"".join([chunk async for chunk in storage.read(handle, 0, len(data))])
        assert read == data


async def test_a_file_system_without_direct_io_is_written_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "open_direct", lambda path, flags: None)
    monkeypatch.setattr(local_writer, "open_direct", lambda path, flags: None)
    async with LocalStorage(tmp_path) as storage:
        handle = await storage.create("abc123", 10_000)
        async with storage.open_writer(handle, 0) as writer:
            await writer.write(b"y" * 10_000)
            assert await writer.flush(durable=True) == 10_000
        assert not storage.direct
        seen = hashlib.sha256()
        assert await storage.feed(handle, 0, 10_000, [seen.update]) == 10_000
        assert seen.hexdigest() == hashlib.sha256(b"y" * 10_000).hexdigest()


@pytest.mark.parametrize(("others", "hashing"), [(0, "chunkd-hash"), (2, "chunkd-io")])
async def test_batches_are_hashed_beside_the_write_while_writers_are_few(
    tmp_path: Path, others: int, hashing: str
) -> None:
    """Observers see every byte in order: on a helper thread beside the write while at most
    two writers are open, on the writing thread in a crowd."""
    data = random.Random(5).randbytes(2 * 550_000 + 100_999)
    seen = hashlib.sha256()
    threads: set[str] = set()

    def observe(chunk: bytes) -> None:
        threads.add(threading.current_thread().name)
        seen.update(chunk)

    async with LocalStorage(tmp_path, batch_size=512 * 1024) as storage:
        crowd = [await storage.create(f"other{n}", 10) for n in range(others)]
        writers = [storage.open_writer(handle, 0) for handle in crowd]
        handle = await storage.create("abc123", len(data))
        async with storage.open_writer(handle, 0, [observe]) as writer:
            for at in range(0, len(data), 50_000):
                await writer.write(data[at : at + 50_000])
            assert await writer.flush(durable=True) == len(data)
        for other in writers:
            await other.close()
    assert seen.digest() == hashlib.sha256(data).digest()
    assert {name.split("_")[0] for name in threads} == {hashing}
    assert (tmp_path / "files" / "ab" / "abc123").read_bytes() == data


def test_nothing_to_show_starts_no_helper() -> None:
    assert show_beside([], [b"x"]) is None
    assert show_beside([len], []) is None
