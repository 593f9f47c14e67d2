"""Crashes around REST upload sessions, against the real server process.

* ``kill -9`` of the server while 8 connections PUT parts: after a restart every acknowledged part
  is listed as received, nothing but acknowledged or in-flight parts is, every listed part holds
  the right bytes, and sending exactly the missing parts completes a byte-identical file.
* ``kill -9`` of a client process mid-part: the status names what is missing, sending only that
  completes the file, and no part is ever stored twice.
"""

from __future__ import annotations

import hashlib
import queue
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import blake3
import httpx
import pytest

from chunkd.testing.server import ServerProcess

MiB = 1 << 20


def paced(body: bytes, piece: int, pause: float) -> Iterator[bytes]:
    """A body that trickles out, so requests are mid-body when something is killed."""
    for start in range(0, len(body), piece):
        yield body[start : start + piece]
        time.sleep(pause)


def create_session(
    client: httpx.Client, server: ServerProcess, source: bytes, part_size: int
) -> str:
    answer = client.post(
        f"{server.url}/uploads",
        json={
            "filename": "crash.bin",
            "size": len(source),
            "part_size": part_size,
            "sha256": hashlib.sha256(source).hexdigest(),
        },
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["part_count"] == -(-len(source) // part_size)
    upload_id: str = body["id"]
    return upload_id


def status_of(client: httpx.Client, server: ServerProcess, upload_id: str) -> dict[str, Any]:
    answer = client.get(f"{server.url}/uploads/{upload_id}")
    assert answer.status_code == 200, answer.text
    status: dict[str, Any] = answer.json()
    return status


def missing_of(status: dict[str, Any]) -> set[int]:
    return {n for first, last in status["missing_parts"] for n in range(first, last + 1)}


def part_of(source: bytes, n: int, part_size: int) -> bytes:
    return source[n * part_size : (n + 1) * part_size]


def put_part(
    client: httpx.Client, server: ServerProcess, upload_id: str, n: int, body: bytes
) -> httpx.Response:
    """PUT one part, retrying only while the server says the part is busy (423, retryable):
    after a client dies mid-part the server may not have released that part's lock yet."""
    deadline = time.monotonic() + 10
    while True:
        answer = client.put(f"{server.url}/uploads/{upload_id}/parts/{n}", content=body)
        if answer.status_code != 423 or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def complete_and_verify(
    client: httpx.Client, server: ServerProcess, upload_id: str, source: bytes
) -> None:
    done = client.post(f"{server.url}/uploads/{upload_id}/complete")
    assert done.status_code == 200, done.text
    status = done.json()
    assert status["state"] == "complete"
    assert status["missing_parts"] == []
    assert status["digests"]["sha256"] == hashlib.sha256(source).hexdigest()
    download = client.get(status["location"])
    assert download.status_code == 200
    assert len(download.content) == len(source)
    assert download.content == source, "the stored file differs from its source"


SIZE = 64 * MiB
PART = 1 * MiB
PARTS = SIZE // PART
CONNECTIONS = 8


@pytest.mark.e2e
def test_kill_9_during_8_parallel_part_uploads(server: ServerProcess) -> None:
    rng = random.Random(11)
    source = rng.randbytes(SIZE)
    with httpx.Client(timeout=30) as client:
        upload_id = create_session(client, server, source, PART)

    order = list(range(PARTS))
    rng.shuffle(order)
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for n in order:
        todo.put(n)
    lock = threading.Lock()
    acked: set[int] = set()  # a 2xx answer arrived
    started: set[int] = set()  # a PUT was begun (acknowledged, refused, or cut by the kill)
    cut: set[int] = set()  # in flight when the server died: no answer ever came
    refused: list[str] = []
    killed = threading.Event()

    def connection() -> None:
        with httpx.Client(timeout=30) as own:
            while not killed.is_set():
                try:
                    n = todo.get_nowait()
                except queue.Empty:
                    return
                body = part_of(source, n, PART)
                with lock:
                    started.add(n)
                try:
                    answer = own.put(
                        f"{server.url}/uploads/{upload_id}/parts/{n}",
                        content=paced(body, 64 << 10, 0.005),
                        headers={"Content-Length": str(len(body))},
                    )
                except httpx.TransportError:
                    with lock:
                        cut.add(n)
                    return  # the server died under this request
                with lock:
                    if answer.status_code in (200, 201):
                        acked.add(n)
                    else:
                        refused.append(f"part {n}: {answer.status_code} {answer.text}")
                        return

    with ThreadPoolExecutor(CONNECTIONS) as pool:
        futures = [pool.submit(connection) for _ in range(CONNECTIONS)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # a quarter of the parts are acknowledged
            with lock:
                if len(acked) >= PARTS // 4 or refused:
                    break
            time.sleep(0.005)
        server.kill()
        killed.set()
        for future in futures:
            future.result()

    assert not refused, refused
    assert PARTS // 4 <= len(acked) < PARTS, "the kill came too late; pace the bodies more"
    assert cut, "no request was in flight at the kill"
    assert acked.isdisjoint(cut)

    server.start()
    with httpx.Client(timeout=60) as client:
        status = status_of(client, server, upload_id)
        assert status["state"] == "receiving"
        missing = missing_of(status)
        received = set(range(PARTS)) - missing
        assert status["parts_received"] == len(received)
        # nothing acknowledged is lost ...
        assert acked <= received, f"acknowledged but lost: {sorted(acked - received)}"
        # ... and only a part whose body was (being) sent can be there: an in-flight part may
        # have been committed just before the kill, its answer never sent
        assert received <= acked | cut, f"never sent: {sorted(received - acked - cut)}"
        assert received <= started

        # every part listed as received holds its source's bytes: the same bytes again are a
        # harmless retry (200, new: false), other bytes would be a 409
        for n in sorted(received):
            again = put_part(client, server, upload_id, n, part_of(source, n, PART))
            assert again.status_code == 200, (n, again.text)
            assert again.json()["new"] is False
            expected = blake3.blake3(part_of(source, n, PART)).hexdigest()
            assert again.json()["digest"] == f"blake3:{expected}"

        # send exactly the missing parts, each stored as new
        def resend(n: int) -> int:
            with httpx.Client(timeout=60) as own:
                answer = put_part(own, server, upload_id, n, part_of(source, n, PART))
                assert answer.status_code == 201, (n, answer.text)
                assert answer.json()["new"] is True
                return n

        with ThreadPoolExecutor(CONNECTIONS) as pool:
            assert sorted(pool.map(resend, sorted(missing))) == sorted(missing)
        assert missing_of(status_of(client, server, upload_id)) == set()
        complete_and_verify(client, server, upload_id, source)


# The client process: PUTs parts in order on one connection, each body paced, and reports
# "start n" before and "ack n status" after each one on stdout.
CLIENT = """
import sys, time, httpx
url, path, part_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
source = open(path, "rb").read()

def paced(body):
    for start in range(0, len(body), 16384):
        yield body[start : start + 16384]
        time.sleep(0.005)

with httpx.Client(timeout=30) as client:
    for n in range(-(-len(source) // part_size)):
        body = source[n * part_size : (n + 1) * part_size]
        print("start", n, flush=True)
        answer = client.put(
            f"{url}/parts/{n}", content=paced(body), headers={"Content-Length": str(len(body))}
        )
        print("ack", n, answer.status_code, flush=True)
"""

SMALL_PART = 128 << 10
SMALL_PARTS = 24
KILL_AFTER = 10


@pytest.mark.e2e
def test_a_client_killed_mid_part_resumes_with_only_the_missing_parts(
    server: ServerProcess, tmp_path: Path
) -> None:
    rng = random.Random(12)
    source = rng.randbytes(SMALL_PARTS * SMALL_PART - 1000)  # a short last part
    path = tmp_path / "source.bin"
    path.write_bytes(source)
    with httpx.Client(timeout=30) as client:
        upload_id = create_session(client, server, source, SMALL_PART)

    puts: Counter[int] = Counter()  # every PUT begun, by the client process and by the resume
    acked: set[int] = set()
    in_flight: int | None = None
    url = f"{server.url}/uploads/{upload_id}"
    with subprocess.Popen(
        [sys.executable, "-c", CLIENT, url, str(path), str(SMALL_PART)],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            for line in child.stdout:
                word, index, *rest = line.split()
                if word == "start":
                    puts[int(index)] += 1
                    in_flight = int(index)
                    if len(acked) == KILL_AFTER:
                        time.sleep(0.02)  # well into the part's body (~40 ms in all)
                        break
                else:
                    assert rest == ["201"], line
                    acked.add(int(index))
                    in_flight = None
        finally:
            child.kill()  # SIGKILL: the client process dies without a word
            child.wait()
    assert acked == set(range(KILL_AFTER)) and in_flight == KILL_AFTER

    with httpx.Client(timeout=30) as client:
        missing = missing_of(status_of(client, server, upload_id))
        received = set(range(SMALL_PARTS)) - missing
        assert acked <= received <= acked | {in_flight}, sorted(received)
        for n in sorted(missing):  # resume: only the missing parts
            puts[n] += 1
            answer = put_part(client, server, upload_id, n, part_of(source, n, SMALL_PART))
            assert answer.status_code == 201, (n, answer.text)
            assert answer.json()["new"] is True, f"part {n} was stored twice"
        complete_and_verify(client, server, upload_id, source)

    # every part was sent once, but the one cut by the kill, sent again only if it was lost
    expected = {n: 1 for n in range(SMALL_PARTS)}
    if in_flight in missing:
        expected[in_flight] = 2
    assert dict(puts) == expected
