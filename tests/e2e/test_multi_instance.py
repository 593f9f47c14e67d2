"""Three chunkd instances sharing PostgreSQL, Redis and an S3-compatible store behind nginx
round-robin; tus uploads and parallel REST parts spread over all three; one instance
kill -9'ed mid-upload. Every upload completes byte-identical, each hand-off happens exactly
once, and a progress subscriber on one instance sees uploads served by the others."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from chunkd.testing.nginx import running_balancer
from chunkd.testing.postgres import running_postgres
from chunkd.testing.processes import free_port
from chunkd.testing.redis import running_redis
from chunkd.testing.s3 import running_moto
from chunkd.testing.server import ServerProcess
from tests.e2e.test_events import Collector
from tests.e2e.test_handoff import Receiver, hook_env

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}
MiB = 1 << 20


def retrying(call: object, *args: object, tries: int = 60) -> httpx.Response:
    """A client's patience: a connection error or a 5xx (the instance behind nginx died, or
    is being failed over) is retried after a short pause."""
    for _ in range(tries):
        try:
            answer: httpx.Response = call(*args)  # type: ignore[operator]
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        if answer.status_code < 500:
            return answer
        time.sleep(0.2)
    raise AssertionError("gave up retrying")


def tus_upload(base: str, data: bytes, kill: threading.Event) -> str:
    with httpx.Client(timeout=30) as client:
        created = retrying(
            lambda: client.post(f"{base}/files/", headers={**TUS, "Upload-Length": str(len(data))})
        )
        location = created.headers["Location"]
        offset = 0
        while offset < len(data):
            chunk = data[offset : offset + 2 * MiB]
            answer = retrying(
                lambda o=offset, c=chunk: client.patch(
                    location, content=c, headers={**PATCH, "Upload-Offset": str(o)}
                )
            )
            if answer.status_code == 204:
                offset = int(answer.headers["Upload-Offset"])
                if offset >= len(data) // 2:
                    kill.set()
            else:  # 409/423 after a takeover or a lost answer: ask where we are
                offset = int(
                    retrying(lambda: client.head(location, headers=TUS)).headers["Upload-Offset"]
                )
            time.sleep(0.05)
        return str(location).rsplit("/", 1)[1]


def rest_upload(base: str, data: bytes) -> str:
    with httpx.Client(timeout=30) as client:
        spec = {
            "filename": "scan.mrc",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        session = retrying(lambda: client.post(f"{base}/uploads", json=spec)).json()
        size = session["part_size"]

        def put(n: int) -> None:
            answer = retrying(
                lambda: client.put(
                    f"{base}/uploads/{session['id']}/parts/{n}",
                    content=data[n * size : (n + 1) * size],
                )
            )
            assert answer.status_code in (200, 201), answer.text

        while True:
            missing = retrying(lambda: client.get(f"{base}/uploads/{session['id']}")).json()[
                "missing_parts"
            ]
            if not missing:
                break
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(put, [n for first, last in missing for n in range(first, last + 1)]))
        done = retrying(lambda: client.post(f"{base}/uploads/{session['id']}/complete"))
        assert done.status_code == 200, done.text
        return str(session["id"])


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[list[ServerProcess], int, Receiver]]:
    with ExitStack() as stack:
        pg = stack.enter_context(running_postgres())
        redis_url = stack.enter_context(running_redis())
        s3 = stack.enter_context(running_moto())
        s3.create_bucket("chunkd")
        receiver = stack.enter_context(Receiver(free_port()))
        env = {
            **hook_env(receiver.port),
            "CHUNKD_CATALOG": "postgres",
            "CHUNKD_POSTGRES_DSN": pg.dsn(),
            "CHUNKD_REDIS_URL": redis_url,
            **s3.chunkd_env("chunkd"),
            "CHUNKD_BEHIND_PROXY": "true",
            "CHUNKD_LOCK_WAIT": "3s",
        }
        servers = [ServerProcess(tmp_path / f"node{n}", env=env) for n in range(3)]
        for server in servers:
            server.start()
            stack.callback(server.stop)
        port = stack.enter_context(running_balancer([s.port for s in servers]))
        yield servers, port, receiver


def test_three_instances_one_killed(cluster: tuple[list[ServerProcess], int, Receiver]) -> None:
    servers, port, receiver = cluster
    base = f"http://127.0.0.1:{port}"
    watcher = Collector(f"{servers[0].url}/events")  # a subscriber on instance 0 only
    watcher.start()
    assert watcher.connected.wait(10)
    kill = threading.Event()
    tus_files = [os.urandom(8 * MiB + n) for n in range(4)]
    rest_files = [os.urandom(16 * MiB + n) for n in range(2)]

    def killer() -> None:
        kill.wait(60)
        servers[1].kill()  # kill -9, mid-upload

    threading.Thread(target=killer, daemon=True).start()
    with ThreadPoolExecutor(6) as pool:
        tus_ids = list(pool.map(lambda d: tus_upload(base, d, kill), tus_files))
        rest_ids = list(pool.map(lambda d: rest_upload(base, d), rest_files))
    assert servers[1].process is None  # it really was killed during the uploads
    with httpx.Client(timeout=60) as client:
        for upload_id, data in zip(tus_ids + rest_ids, tus_files + rest_files, strict=True):
            status = retrying(lambda u=upload_id: client.get(f"{base}/uploads/{u}")).json()
            assert status["state"] == "complete"
            assert status["digests"]["sha256"] == hashlib.sha256(data).hexdigest()
            assert retrying(lambda u=upload_id: client.get(f"{base}/files/{u}")).content == data
    everything = set(tus_ids + rest_ids)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and set(receiver.delivered) != everything:
        time.sleep(0.1)
    time.sleep(1)
    assert receiver.delivered == {upload_id: 1 for upload_id in everything}  # exactly once each
    seen = {e["upload_id"] for e in watcher.events if e["event"] == "completed"}
    assert seen == everything  # instance 0's subscriber saw uploads finished by the others too
