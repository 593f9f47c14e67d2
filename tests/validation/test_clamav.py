from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from chunkd.exceptions import ServiceUnavailable
from chunkd.testing.clamd import EICAR_SIGNATURE, ClamdProcess, eicar, running_clamd
from chunkd.testing.processes import free_port
from chunkd.validation.clamav import CHUNK_LIMIT, ClamdScanner, ScannerUnavailable, ScanResult

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def clamd() -> Iterator[ClamdProcess]:
    with running_clamd() as process:
        yield process


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


async def test_ping(clamd: ClamdProcess) -> None:
    await ClamdScanner(clamd.socket_path).ping()


async def test_eicar_is_found_and_named(clamd: ClamdProcess) -> None:
    result = await ClamdScanner(clamd.socket_path).scan(stream(eicar()))
    assert not result.clean
    assert result.signature is not None
    assert result.signature.startswith(EICAR_SIGNATURE)


async def test_eicar_split_across_chunks_after_clean_bytes_is_found(clamd: ClamdProcess) -> None:
    virus = eicar()
    chunks = (os.urandom(3 * MiB), virus[:20], virus[20:])
    result = await ClamdScanner(clamd.socket_path).scan(stream(*chunks))
    assert result == ScanResult(clean=False, signature=result.signature)
    assert result.signature is not None and EICAR_SIGNATURE in result.signature


async def test_several_mib_of_random_bytes_are_clean(clamd: ClamdProcess) -> None:
    # 256 KiB chunks, one bigger than CHUNK_LIMIT (split by the client) and an empty one.
    chunks = [os.urandom(256 * 1024) for _ in range(16)] + [os.urandom(CHUNK_LIMIT * 2 + 5), b""]
    assert await ClamdScanner(clamd.socket_path).scan(stream(*chunks)) == ScanResult(clean=True)


async def test_empty_stream_is_clean(clamd: ClamdProcess) -> None:
    assert await ClamdScanner(clamd.socket_path).scan(stream()) == ScanResult(clean=True)


async def test_stream_over_clamds_size_limit_is_an_error(clamd: ClamdProcess) -> None:
    # The test daemon's StreamMaxLength is 64M.
    zeros = bytes(4 * MiB)
    with pytest.raises(ScannerUnavailable, match="size limit"):
        await ClamdScanner(clamd.socket_path).scan(stream(*[zeros] * 17))


async def test_concurrent_scans(clamd: ClamdProcess) -> None:
    scanner = ClamdScanner(clamd.socket_path)
    results = await asyncio.gather(
        *(scanner.scan(stream(os.urandom(MiB), eicar() if i % 2 else b"")) for i in range(6))
    )
    assert [r.clean for r in results] == [True, False] * 3


@pytest.mark.parametrize(
    "address",
    ["{tmp}/no-such.sock", "{tmp}/a-file", f"127.0.0.1:{free_port()}"],
    ids=["no socket", "not a socket", "tcp port closed"],
)
async def test_scanner_down(tmp_path: Path, address: str) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    scanner = ClamdScanner(address.format(tmp=tmp_path), timeout=2.0)
    with pytest.raises(ScannerUnavailable) as caught:
        await scanner.scan(stream(b"abc"))
    error = caught.value
    assert isinstance(error, ServiceUnavailable)
    assert (error.status, error.code, error.retryable) == (503, "SCANNER_UNAVAILABLE", True)
    assert str(tmp_path) not in error.message  # no server paths in what a client sees
    with pytest.raises(ScannerUnavailable):
        await scanner.ping()


async def fake_clamd(path: str, answer: bytes | None) -> asyncio.Server:
    """A unix server that reads the command and then answers ``answer`` (None: never)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\0")
            if answer is None:
                await reader.read()  # until the client gives up and hangs up
            else:
                await reader.read(1024)
                writer.write(answer)
                await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_unix_server(handle, path)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"stream: Can't allocate memory ERROR\0", "could not scan the stream: .*ERROR"),
        (b"UNKNOWN COMMAND\0", "unexpected answer"),
        (b"", "hung up without answering"),
        (None, "no answer from the virus scanner within 0.3 s"),
    ],
    ids=["error", "garbage", "hang-up", "silence"],
)
async def test_bad_answers_are_scanner_unavailable(
    tmp_path: Path, answer: bytes | None, message: str
) -> None:
    path = str(tmp_path / "fake.sock")
    server = await fake_clamd(path, answer)
    async with server:
        with pytest.raises(ScannerUnavailable, match=message):
            await ClamdScanner(path, timeout=0.3).scan(stream(b"x" * 10))


async def test_found_answer_is_parsed_from_a_fake(tmp_path: Path) -> None:
    path = str(tmp_path / "fake.sock")
    async with await fake_clamd(path, b"stream: Win.Test.EICAR_HDB-1 FOUND\0"):
        result = await ClamdScanner(path).scan(stream(b"x"))
    assert result == ScanResult(clean=False, signature="Win.Test.EICAR_HDB-1")


def test_empty_address_is_refused() -> None:
    with pytest.raises(ValueError, match="address"):
        ClamdScanner("")
