"""``chunkd serve --workers 2``: requests for one upload reach different worker processes.

Each keep-alive connection stays with the worker that accepted it, and ``/readyz`` names that
worker's pid, so a test can place requests on a chosen worker: a stalled PATCH on one is taken
over at once from the other; progress events of PATCHes served by either reach a subscriber;
a worker killed with -9 mid-upload loses nothing acknowledged and is replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from chunkd.client import Client
from chunkd.testing.server import ServerProcess
from tests.e2e.test_events import Collector
from tests.e2e.tus import TUS, RawPatch, assert_stored, create, offset_of, patch

pytestmark = pytest.mark.e2e
MiB = 1 << 20


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "data", "--workers", "2") as server:
        yield server


def worker_of(client: httpx.Client, server: ServerProcess) -> int:
    pid: int = client.get(f"{server.url}/readyz").json()["pid"]
    return pid


@contextmanager
def client_on(
    server: ServerProcess, *, avoid: int | None = None
) -> Iterator[tuple[httpx.Client, int]]:
    """An httpx client whose one connection is served by a worker other than ``avoid``."""
    for _ in range(100):
        client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=1))
        pid = worker_of(client, server)
        if pid != avoid:
            try:
                yield client, pid
            finally:
                client.close()
            return
        client.close()
    raise AssertionError(f"every connection went to worker {avoid}")


def raw_socket_on(location: str, avoid: int | None = None) -> tuple[socket.socket, int]:
    """A plain socket connected to a worker other than ``avoid`` (asked over it first)."""
    url = urlsplit(location)
    assert url.hostname is not None and url.port is not None
    for _ in range(100):
        sock = socket.create_connection((url.hostname, url.port), timeout=10)
        sock.sendall(f"GET /readyz HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(next(
            line.split(b":", 1)[1] for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ))  # fmt: skip
        while len(body) < length:
            body += sock.recv(4096)
        pid: int = json.loads(body)["pid"]
        if pid != avoid:
            return sock, pid
        sock.close()
    raise AssertionError(f"every connection went to worker {avoid}")


def test_a_stalled_patch_on_one_worker_is_taken_over_from_the_other(
    workers: ServerProcess,
) -> None:
    source = random.Random(3).randbytes(4 * MiB)
    half = len(source) // 2
    with httpx.Client(timeout=10) as client:
        location = create(client, workers, len(source))
    sock, stalled_on = raw_socket_on(location)
    with RawPatch(location, 0, len(source), sock=sock) as stalled:
        stalled.send(source[:half])
        time.sleep(0.3)  # received by its worker; now the connection just hangs
        with client_on(workers, avoid=stalled_on) as (client, newcomer_on):
            assert newcomer_on != stalled_on
            began = time.monotonic()
            answer = patch(client, location, 0, source)
            took = time.monotonic() - began
            assert took < 3.0, f"the new PATCH waited {took:.1f}s for the other worker's"
            if answer.status_code == 409:  # the stalled request saved its half first
                resumed = offset_of(client, location)
                assert resumed == half
                answer = patch(client, location, resumed, source[resumed:])
            assert answer.status_code == 204, (answer.status_code, answer.text)
            assert answer.headers["Upload-Offset"] == str(len(source))
            assert_stored(client, location, source)


def test_progress_of_patches_served_by_both_workers_reaches_one_subscriber(
    workers: ServerProcess,
) -> None:
    source = os.urandom(8 * MiB)
    with httpx.Client(timeout=10) as client:
        location = create(client, workers, len(source))
    upload_id = location.rsplit("/", 1)[1]
    collector = Collector(f"{workers.url}/uploads/{upload_id}/events")
    collector.start()
    assert collector.connected.wait(10)
    time.sleep(0.3)
    served_by: list[int] = []
    step = len(source) // 8
    for offset in range(0, len(source), step):
        previous = served_by[-1] if served_by else None
        with client_on(workers, avoid=previous) as (client, pid):  # alternate the workers
            answer = patch(client, location, offset, source[offset : offset + step])
            assert answer.status_code == 204, (answer.status_code, answer.text)
        served_by.append(pid)
        time.sleep(0.15)
    assert len(set(served_by)) == 2
    collector.join(20)
    assert not collector.is_alive(), "the stream did not end after the upload completed"
    kinds = [event["event"] for event in collector.events]
    assert kinds[0] == "state" and kinds[-1] == "completed", kinds
    progress = [e["bytes_received"] for e in collector.events if e["event"] == "progress"]
    assert len(progress) >= 4 and progress == sorted(progress), progress


def test_a_worker_killed_mid_upload_loses_nothing_acknowledged_and_is_replaced(
    workers: ServerProcess,
) -> None:
    sources = [random.Random(n).randbytes(12 * MiB) for n in range(6)]
    killed = threading.Event()
    with httpx.Client(timeout=10) as client:
        locations = [create(client, workers, len(source)) for source in sources]
        victim = worker_of(client, workers)

    def upload(location: str, source: bytes) -> None:
        """A tus client's patience: on any error, ask the offset again and resume."""
        offset, failures = 0, 0
        while offset < len(source):
            try:
                with httpx.Client(timeout=10) as own:  # a new connection: either worker
                    offset = offset_of(own, location)
                    while offset < len(source):
                        answer = patch(own, location, offset, source[offset : offset + MiB])
                        if answer.status_code != 204:
                            break  # 409/423 after the other worker took over: ask again
                        assert int(answer.headers["Upload-Offset"]) == offset + min(
                            MiB, len(source) - offset
                        )
                        offset = int(answer.headers["Upload-Offset"])
                        time.sleep(0.02)
            except httpx.HTTPError:
                failures += 1
                assert failures < 50
                time.sleep(0.1)
        assert offset == len(source)

    def kill_midway() -> None:
        time.sleep(0.4)
        os.kill(victim, signal.SIGKILL)
        killed.set()

    with ThreadPoolExecutor(len(sources) + 1) as pool:
        pool.submit(kill_midway)
        done = [pool.submit(upload, loc, src) for loc, src in zip(locations, sources, strict=True)]
        for future in done:
            future.result()
    assert killed.is_set()
    with httpx.Client(timeout=10) as client:
        for location, source in zip(locations, sources, strict=True):
            assert_stored(client, location, source)
        seen = set()
        for _ in range(40):  # the replacement worker answers too
            with client_on(workers) as (_client, pid):
                seen.add(pid)
            if len(seen) == 2:
                break
        assert victim not in seen and len(seen) == 2
    peers = {p.name for p in (workers.data_dir / "run" / "peers").iterdir()}
    assert str(victim) not in peers


def test_stopping_the_server_stops_every_worker(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--workers", "2")
    server.start()
    pids = set()
    for _ in range(40):
        with client_on(server) as (_client, pid):
            pids.add(pid)
        if len(pids) == 2:
            break
    assert len(pids) == 2
    server.stop()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.05)


def test_a_rest_upload_in_parallel_parts_over_both_workers_is_verified(
    workers: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(40 * MiB + 5)
    path = tmp_path / "scan.mrc"
    path.write_bytes(data)
    monkeypatch.setenv("CHUNKD_CLIENT_DIR", str(tmp_path / "state"))
    with Client(workers.url, part_size=MiB, parallel=8) as client:
        result = client.upload(path)
    assert result.state == "complete"
    assert result.sha256 == hashlib.sha256(data).hexdigest()  # the server's, checked at complete
    stored = httpx.get(f"{workers.files_url}{result.id}", headers=TUS)
    assert stored.content == data


def test_a_scrape_counts_the_requests_of_every_worker(workers: ServerProcess) -> None:
    served: dict[int, int] = {}
    for _ in range(200):
        with client_on(workers) as (client, pid):
            served[pid] = served.get(pid, 0) + 1  # one /readyz each
        if len(served) == 2 and min(served.values()) >= 3:
            break
    assert len(served) == 2
    with httpx.Client(timeout=10) as client:
        text = client.get(f"{workers.url}/metrics").text
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("chunkd_requests_total{") and 'route="/readyz"' in line
    )
    assert counted >= sum(served.values())
    assert "chunkd_active_uploads " in text and 'chunkd_uploads{state="complete"}' in text
