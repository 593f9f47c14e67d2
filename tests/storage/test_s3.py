"""The S3 backend against a real S3-compatible server (moto), with S3's own edge cases."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import crc32c
import pytest

from chunkd.settings import SettingsError, load_settings
from chunkd.storage.s3 import MissingBytes, NotReadable, S3Storage, part_size_for
from chunkd.storage.s3api import PartInfo, S3Error, crc32c_base64
from chunkd.storage.s3boto import BotoS3API
from chunkd.testing.s3 import MotoServer, running_moto
from chunkd.testing.storage_contract import StorageContract, read_all, write

PART = 64 * 1024  # the servers's and the backend's minimum part in these tests (S3: 5 MiB)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with running_moto(min_part_size=PART) as server:
        server.create_bucket("chunkd")
        yield server


def make_storage(moto: MotoServer, tmp_path: Path, **options: Any) -> S3Storage:
    options.setdefault("min_part_size", PART)
    options.setdefault("max_size", PART * 10_000)
    return S3Storage(
        bucket="chunkd",
        prefix=f"{secrets.token_hex(4)}/",
        endpoint=moto.endpoint,
        region=moto.region,
        access_key=moto.access_key,
        secret_key=moto.secret_key,
        spool_dir=tmp_path / "spool",
        batch_size=16 * 1024,
        **options,
    )


@pytest.fixture
async def storage(moto: MotoServer, tmp_path: Path) -> AsyncIterator[S3Storage]:
    async with make_storage(moto, tmp_path) as storage:
        yield storage


class TestS3Storage(StorageContract):
    pass  # the ``storage`` fixture above


async def parts(storage: S3Storage, handle: dict[str, str]) -> list[PartInfo]:
    return await storage.api.list_parts(handle["key"], handle["upload"])


async def test_part_sizes_follow_s3_rules() -> None:
    mib = 1024 * 1024
    assert part_size_for(3_000_000, None, max_size=10**11, minimum=5 * mib) == 5 * mib
    assert part_size_for(10**9, None, max_size=10**11, minimum=5 * mib) == 5 * mib
    big = part_size_for(2 * 10**12, None, max_size=10**13, minimum=5 * mib)
    assert -(-(2 * 10**12) // big) <= 10_000 and big % mib == 0
    deferred = part_size_for(None, None, max_size=100 * 1024 * mib, minimum=5 * mib)
    assert 100 * 1024 * mib / deferred <= 10_000
    with pytest.raises(ValueError, match="5242880"):
        part_size_for(20 * mib, mib, max_size=10**11, minimum=5 * mib)  # a REST part of 1 MiB
    with pytest.raises(ValueError, match="10000"):
        part_size_for(60 * 1024 * mib, 5 * mib, max_size=10**12, minimum=5 * mib)
    with pytest.raises(ValueError):
        part_size_for(10**12, 6 * 1024 * mib, max_size=10**13, minimum=5 * mib)


async def test_rest_parts_in_any_order_map_to_s3_parts(storage: S3Storage) -> None:
    data = os.urandom(5 * PART + 1234)
    handle = await storage.create(secrets.token_hex(8), len(data), part_size=PART)
    order = [4, 1, 5, 0, 3, 2]

    async def put(index: int) -> None:
        await write(storage, handle, index * PART, data[index * PART : (index + 1) * PART])

    real = storage.api
    storage._api = recording = _RecordingParts(real)
    try:
        await asyncio.gather(*(put(index) for index in order))
    finally:
        storage._api = real
    stored = await parts(storage, handle)
    assert [(p.number, p.size) for p in stored] == [(n, PART) for n in range(1, 6)] + [(6, 1234)]
    # every part carried the CRC32C of its bytes, computed while they streamed in
    assert sorted(recording.checksums) == [
        (n + 1, crc32c_base64(crc32c.crc32c(data[n * PART : (n + 1) * PART]))) for n in range(6)
    ]
    handle = await storage.finish(handle, len(data))
    assert await read_all(storage, handle, 0, len(data)) == data


async def test_rest_part_below_the_minimum_is_refused(storage: S3Storage) -> None:
    with pytest.raises(ValueError):
        await storage.create(secrets.token_hex(8), 10 * PART, part_size=PART // 2)


@pytest.fixture
def tiny_parts_moto() -> Iterator[MotoServer]:
    """A server taking 1 KiB parts, so 1,200 parts are only 1.2 MB."""
    with running_moto(min_part_size=1024) as server:
        server.create_bucket("chunkd")
        yield server


async def test_more_than_a_thousand_parts(tiny_parts_moto: MotoServer, tmp_path: Path) -> None:
    async with make_storage(tiny_parts_moto, tmp_path, min_part_size=1024) as storage:
        data = os.urandom(1024 * 1100 + 17)
        handle = await storage.create(secrets.token_hex(8), len(data), part_size=1024)
        limit = asyncio.Semaphore(16)

        async def put(start: int) -> None:
            async with limit:
                await write(storage, handle, start, data[start : start + 1024])

        await asyncio.gather(*(put(start) for start in range(0, len(data), 1024)))
        stored = await parts(storage, handle)
        assert len(stored) == 1101  # listed over two pages
        handle = await storage.finish(handle, len(data))
        assert await read_all(storage, handle, 0, len(data)) == data


async def test_tus_resume_on_another_instance_reads_the_spooled_tail(
    moto: MotoServer, tmp_path: Path
) -> None:
    data = os.urandom(3 * PART + 999)
    first = make_storage(moto, tmp_path / "a", max_size=PART * 100)
    async with first:
        handle = await first.create(secrets.token_hex(8), None)
        acked = await write(first, handle, 0, data[: PART + 500])
        assert [p.number for p in await parts(first, handle)] == [1]  # the tail is not a part
    second = make_storage(moto, tmp_path / "b", max_size=PART * 100)
    second.prefix = first.prefix
    async with second:
        assert await write(second, handle, acked, data[acked:]) == len(data)
        handle = await second.finish(handle, len(data))
        assert await read_all(second, handle, 0, len(data)) == data
        assert await second.api.list_objects(f"{second.prefix}.tails/") == []


async def test_interruptions_never_add_parts(storage: S3Storage) -> None:
    data = os.urandom(4 * PART + 10)
    handle = await storage.create(secrets.token_hex(8), len(data))
    assert int(handle["part_size"]) == PART
    offset = 0
    for step in (1000, PART - 1000, 1, PART, 70_000, 1, 3, PART):  # odd, part-crossing requests
        offset = await write(storage, handle, offset, data[offset : offset + step])
        # a refused request past the acknowledged offset, then the retry from that offset
        await write(storage, handle, offset, os.urandom(PART + 7))
    await write(storage, handle, offset, data[offset:])
    stored = await parts(storage, handle)
    assert max(p.number for p in stored) <= 6  # ceil(len / PART) = 5, plus one refused
    handle = await storage.finish(handle, len(data))
    assert await read_all(storage, handle, 0, len(data)) == data


async def test_resume_without_the_tail_fails_loudly(storage: S3Storage) -> None:
    handle = await storage.create(secrets.token_hex(8), None)
    with pytest.raises(MissingBytes):
        await write(storage, handle, 500, b"x" * 10)


async def test_finish_with_a_missing_part_fails(storage: S3Storage) -> None:
    handle = await storage.create(secrets.token_hex(8), 3 * PART, part_size=PART)
    await write(storage, handle, 0, os.urandom(PART))
    await write(storage, handle, 2 * PART, os.urandom(PART))
    with pytest.raises(MissingBytes, match=r"\[2\]"):
        await storage.finish(handle, 3 * PART)


async def test_finish_twice_and_empty_files(storage: S3Storage) -> None:
    handle = await storage.create(secrets.token_hex(8), 0)
    sealed = await storage.finish(handle, 0)
    assert await storage.finish(handle, 0) == sealed  # the upload is gone: the object answers
    assert await read_all(storage, sealed, 0, 0) == b""
    assert await storage.delete(sealed) == 0  # an empty object reclaims nothing
    assert await storage.api.head_object(sealed["key"]) is None


async def test_delete_aborts_and_removes_tails(storage: S3Storage) -> None:
    handle = await storage.create(secrets.token_hex(8), None)
    await write(storage, handle, 0, os.urandom(PART + 100))
    assert await storage.delete(handle) == PART + 100
    assert await storage.api.list_multipart_uploads(storage.prefix) == []
    assert await storage.api.list_objects(storage.prefix) == []


async def test_abort_orphans(storage: S3Storage) -> None:
    # moto dates every multipart upload 2010-11-10: ages of uploads are checked against that,
    # ages of tail objects (real timestamps) against a second's wait.
    old = await storage.create(secrets.token_hex(8), None)
    await write(storage, old, 0, b"a tail")
    assert await storage.abort_orphans(older_than=30 * 365 * 86400.0) == 0
    await asyncio.sleep(1.1)  # S3 timestamps have a resolution of one second
    young = await storage.create(secrets.token_hex(8), None)
    await write(storage, young, 0, b"another tail")
    assert await storage.abort_orphans(older_than=1.0) == 2
    assert await storage.api.list_multipart_uploads(storage.prefix) == []
    tails = [key for key, _, _ in await storage.api.list_objects(storage.prefix)]
    assert tails == [f"{young['tails']}1"]  # the old tail went; the young one waits its turn


async def test_range_reads(storage: S3Storage) -> None:
    data = os.urandom(3 * PART)
    handle = await storage.create(secrets.token_hex(8), len(data))
    with pytest.raises(NotReadable):
        await read_all(storage, handle, 0, 10)
    await write(storage, handle, 0, data)
    handle = await storage.finish(handle, len(data))
    for start, stop in ((0, 1), (PART - 1, PART + 1), (len(data) - 5, len(data)), (7, 7)):
        assert await read_all(storage, handle, start, stop) == data[start:stop]


async def test_concatenation_copies_whole_parts_server_side(storage: S3Storage) -> None:
    pieces = [os.urandom(n) for n in (2 * PART + 5, 10, 3 * PART)]
    sources = []
    for data in pieces:
        handle = await storage.create(secrets.token_hex(8), len(data))
        await write(storage, handle, 0, data)
        sources.append((await storage.finish(handle, len(data)), len(data)))
    joined = b"".join(pieces)
    target = await storage.create(secrets.token_hex(8), len(joined))
    await storage.concatenate(target, sources)
    assert len(await parts(storage, target)) == -(-len(joined) // PART)
    target = await storage.finish(target, len(joined))
    assert hashlib.sha256(await read_all(storage, target, 0, len(joined))).digest() == (
        hashlib.sha256(joined).digest()
    )


class _ErrorIn200(BaseHTTPRequestHandler):
    """Answers every request ``200 OK`` with an S3 ``<Error>`` body, as S3 may do for
    CompleteMultipartUpload after a long wait."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
            b"<Message>We encountered an internal error.</Message></Error>"
        )
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def error_in_200() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ErrorIn200)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_complete_with_an_error_in_a_200_reply_raises(error_in_200: str) -> None:
    api = BotoS3API(
        bucket="chunkd",
        endpoint=error_in_200,
        region="us-east-1",
        access_key="testing",
        secret_key="testing",
        attempts=2,
    )
    try:
        with pytest.raises(S3Error) as caught:
            await api.complete_multipart_upload("key", "upload", [PartInfo(1, 10, '"etag"')])
        assert caught.value.code == "InternalError"
    finally:
        api.close()


class _RecordingParts:
    """The real API, noting the checksum sent with each part."""

    def __init__(self, api: Any) -> None:
        self._api = api
        self.checksums: list[tuple[int, str | None]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    async def upload_part(
        self, key: str, upload_id: str, number: int, body: IO[bytes], crc32c: str | None
    ) -> None:
        self.checksums.append((number, crc32c))
        await self._api.upload_part(key, upload_id, number, body, crc32c)


class _FailingComplete:
    """The real API, but CompleteMultipartUpload fails the first ``failures`` times."""

    def __init__(self, api: Any, failures: int) -> None:
        self._api = api
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    async def complete_multipart_upload(
        self, key: str, upload_id: str, parts: Sequence[PartInfo]
    ) -> None:
        if self.failures:
            self.failures -= 1
            raise S3Error("InternalError", "injected")
        await self._api.complete_multipart_upload(key, upload_id, parts)


async def test_a_failed_complete_can_be_retried(storage: S3Storage) -> None:
    data = os.urandom(2 * PART + 3)
    handle = await storage.create(secrets.token_hex(8), len(data))
    await write(storage, handle, 0, data)
    real = storage.api
    storage._api = _FailingComplete(real, failures=1)
    try:
        with pytest.raises(S3Error):
            await storage.finish(handle, len(data))
    finally:
        storage._api = real
    sealed = await storage.finish(handle, len(data))
    assert await storage.finish(handle, len(data)) == sealed  # completed already: same answer
    assert await read_all(storage, sealed, 0, len(data)) == data


async def test_from_settings(moto: MotoServer, tmp_path: Path) -> None:
    settings = load_settings(
        storage="s3",
        data_dir=tmp_path,
        s3_endpoint=moto.endpoint,
        s3_region=moto.region,
        s3_bucket="chunkd",
        s3_prefix="from-settings/",
        s3_access_key=moto.access_key,
        s3_secret_key=moto.secret_key,
    )
    async with S3Storage.from_settings(settings) as storage:
        await storage.ping()
        handle = await storage.create(secrets.token_hex(8), 10)
        assert handle["key"].startswith("from-settings/")
        assert int(handle["part_size"]) == 5 * 1024 * 1024  # S3's own minimum by default
        assert await storage.delete(handle) == 0
    with pytest.raises(SettingsError, match="s3_bucket"):
        load_settings(storage="s3")


@pytest.mark.parametrize("delay", [0.01, 0.05, 0.15])
async def test_a_cancelled_request_keeps_what_it_counted(storage: S3Storage, delay: float) -> None:
    data = os.urandom(4 * PART + 100)
    handle = await storage.create(secrets.token_hex(8), len(data))
    writer = storage.open_writer(handle, 0)

    async def feed() -> None:
        for start in range(0, len(data), 1000):
            await writer.write(data[start : start + 1000])

    task = asyncio.create_task(feed())
    await asyncio.sleep(delay)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    acked = await writer.flush(durable=True)  # what the service would acknowledge
    await writer.close()
    assert await write(storage, handle, acked, data[acked:]) == len(data)
    handle = await storage.finish(handle, len(data))
    assert await read_all(storage, handle, 0, len(data)) == data
