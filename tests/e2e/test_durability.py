"""Durability against the real server process: bodies cut off mid-way, kill -9 during uploads,
stalled bodies ended by the idle timeout. What was acknowledged is never lost, what arrived
is kept, and every file ends byte-identical to its source."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from chunkd.testing.server import ServerProcess
from tests.e2e.tus import (
    PATCH,
    RawPatch,
    assert_stored,
    create,
    download,
    finish,
    offset_of,
    wait_for_offset,
)

# (bytes sent, Content-Length): tiny, one socket buffer, several reads, most of a large body
CUTS = [(1_000, 5_000), (60_000, 100_000), (700_000, 1_000_000), (3_000_000, 4_000_000)]


@pytest.mark.e2e
@pytest.mark.parametrize("server_kind", ["uvicorn", "granian"])
@pytest.mark.parametrize("pause", [0.0, 0.3], ids=["body-behind-headers", "body-after-pause"])
def test_a_body_cut_mid_way_keeps_exactly_the_bytes_that_arrived(
    tmp_path: Path, server_kind: str, pause: float
) -> None:
    rng = random.Random(1)
    with (
        ServerProcess(tmp_path / "data", "--server", server_kind) as server,
        httpx.Client(timeout=10) as client,
    ):
        for sent, length in CUTS:
            source = rng.randbytes(length)
            location = create(client, server, length)
            with RawPatch(location, 0, length) as request:
                if pause:  # the handler is already waiting for the body when it comes
                    time.sleep(pause)
                request.send(source[:sent])
                request.cut()
            # On loopback every byte sent before the FIN arrives; the server must keep them all.
            kept = wait_for_offset(client, location, sent)
            assert kept == sent, f"{sent} of {length} bytes arrived, {kept} were kept"
            finish(client, location, source)
            assert_stored(client, location, source)


SIZE = 8 << 20
CHUNK = 1 << 20
UPLOADS = 20


def paced(body: bytes) -> Iterator[bytes]:
    """A body that trickles out in 64 KiB pieces, so requests are mid-body at the kill."""
    for start in range(0, len(body), 64 << 10):
        yield body[start : start + (64 << 10)]
        time.sleep(0.004)


@pytest.mark.e2e
def test_kill_9_during_20_uploads_loses_nothing_acknowledged(server: ServerProcess) -> None:
    rng = random.Random(2)
    sources = [rng.randbytes(SIZE) for _ in range(UPLOADS)]
    with httpx.Client(timeout=10) as client:
        locations = [create(client, server, SIZE) for _ in sources]

    acked = [0] * UPLOADS
    lock = threading.Lock()
    killed = threading.Event()

    def upload(index: int) -> None:
        source, location = sources[index], locations[index]
        offset = 0
        with httpx.Client(timeout=10) as own:
            while offset < SIZE and not killed.is_set():
                body = source[offset : offset + CHUNK]
                try:
                    answer = own.patch(
                        location,
                        content=paced(body),
                        headers={
                            **PATCH,
                            "Upload-Offset": str(offset),
                            "Content-Length": str(len(body)),
                        },
                    )
                except httpx.TransportError:
                    return  # the server died under this request
                if answer.status_code != 204:
                    return
                offset = int(answer.headers["Upload-Offset"])
                with lock:
                    acked[index] = offset

    with ThreadPoolExecutor(UPLOADS) as pool:
        futures = [pool.submit(upload, index) for index in range(UPLOADS)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # every upload has 2+ MiB acknowledged
            with lock:
                if min(acked) >= 2 * CHUNK:
                    break
            time.sleep(0.01)
        with lock:
            assert min(acked) >= 2 * CHUNK, acked
            assert max(acked) < SIZE, "an upload finished before the kill; pace them more"
        server.kill()
        killed.set()
        for future in futures:
            future.result()
    seen = list(acked)  # the threads are done: these are the last acknowledged offsets

    server.start()
    with httpx.Client(timeout=30) as client:
        reported = [offset_of(client, location) for location in locations]
        for index, (offset, last_ack) in enumerate(zip(reported, seen, strict=True)):
            # nothing acknowledged is lost; at most the request in flight was also committed
            assert last_ack <= offset <= min(last_ack + CHUNK, SIZE), (index, last_ack, offset)

        def resume(index: int) -> None:
            with httpx.Client(timeout=30) as own:
                finish(own, locations[index], sources[index], chunk=CHUNK)

        with ThreadPoolExecutor(UPLOADS) as pool:
            list(pool.map(resume, range(UPLOADS)))

        for index, (location, source) in enumerate(zip(locations, sources, strict=True)):
            stored = download(client, location)
            kept = reported[index]
            assert stored[:kept] == source[:kept], f"upload {index}: the kept prefix differs"
            assert_stored(client, location, source)


@pytest.mark.e2e
def test_a_stalled_body_is_ended_by_the_idle_timeout_and_its_prefix_kept(
    tmp_path: Path,
) -> None:
    idle = 1.0
    rng = random.Random(3)
    length, sent = 2_000_000, 1_000_000
    source = rng.randbytes(length)
    # idle_timeout has no flag on `chunkd serve`; only CHUNKD_IDLE_TIMEOUT sets it
    with (
        ServerProcess(tmp_path / "data", env={"CHUNKD_IDLE_TIMEOUT": f"{idle}s"}) as server,
        httpx.Client(timeout=10) as client,
    ):
        location = create(client, server, length)
        with RawPatch(location, 0, length) as request:
            request.send(source[:sent])
            started = time.monotonic()
            time.sleep(idle / 3)
            assert offset_of(client, location) == 0  # still receiving: nothing acknowledged yet
            answer = request.response(timeout=idle + 5)
            waited = time.monotonic() - started
            assert answer is not None, "the server closed the stalled request without an answer"
            assert answer.status == 204
            assert answer.headers["upload-offset"] == str(sent)
            assert waited >= idle * 0.9, f"ended after {waited:.2f}s, before the idle timeout"
        assert offset_of(client, location) == sent
        finish(client, location, source)
        assert_stored(client, location, source)


@pytest.mark.e2e
def test_a_slow_but_steady_body_is_not_ended_by_the_idle_timeout(tmp_path: Path) -> None:
    idle = 0.6
    rng = random.Random(4)
    pieces = 6
    source = rng.randbytes(pieces * 10_000)
    with (
        ServerProcess(tmp_path / "data", env={"CHUNKD_IDLE_TIMEOUT": f"{idle}s"}) as server,
        httpx.Client(timeout=10) as client,
    ):
        location = create(client, server, len(source))
        with RawPatch(location, 0, len(source)) as request:
            for piece in range(pieces):  # 6 x 0.3 s: longer than the idle timeout in total
                request.send(source[piece * 10_000 : (piece + 1) * 10_000])
                time.sleep(idle / 2)
            answer = request.response(timeout=5)
            assert answer is not None
            assert answer.status == 204
            assert answer.headers["upload-offset"] == str(len(source))
        assert_stored(client, location, source)
