"""Large bodies read into chunks by a real uvicorn: the same bytes, one message per chunk,
the connection's next request intact, a client's last bytes handed over."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn

from chunkd.server import uvicorn_reading
from chunkd.server.uvicorn_reading import (
    CHUNK,
    MIN_DIRECT,
    PATIENCE,
    BodyReader,
    ReadingProtocol,
    unfilled,
)


@dataclass
class Seen:
    path: str
    kinds: list[tuple[str, int]] = field(default_factory=list)  # (type of body, its length)
    body: bytearray = field(default_factory=bytearray)
    end: str = ""


class Recorder:
    """Reads each body (``/early``: answers first; ``/hold``: stops asking after its first
    whole chunk until ``release`` is set) and answers with the length it read."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.holding = threading.Event()
        self.release = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen = Seen(scope["path"])
        self.seen.append(seen)
        while scope["path"] != "/early":
            message = await receive()
            if message["type"] == "http.disconnect":
                seen.end = "disconnect"
                return
            seen.kinds.append((type(message["body"]).__name__, len(message["body"])))
            seen.body += message["body"]
            if scope["path"] == "/hold" and isinstance(message["body"], bytearray):
                self.holding.set()
                await asyncio.to_thread(self.release.wait, 10)
            if not message.get("more_body", False):
                seen.end = "complete"
                break
        reply = str(len(seen.body)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(reply)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": reply})


@pytest.fixture
def served() -> Iterator[tuple[Recorder, int]]:
    app = Recorder()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, http=ReadingProtocol, loop="uvloop", lifespan="off", log_config=None,
        timeout_graceful_shutdown=1,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    _until(lambda: server.started)
    yield app, sock.getsockname()[1]
    server.should_exit = True
    thread.join(10)
    sock.close()


def _until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _head(length: int | None, path: str = "/up", *extra: str) -> bytes:
    lines = [f"PUT {path} HTTP/1.1", "Host: test", *extra]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _responses(conn: socket.socket, count: int) -> list[bytes]:
    """``count`` responses' bodies, read off the connection."""
    buffered, bodies = b"", []
    while len(bodies) < count:
        head_end = buffered.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buffered[:head_end].decode()
            if head.startswith("HTTP/1.1 100"):
                buffered = buffered[head_end + 4 :]
                continue
            length = int(head.lower().split("content-length: ")[1].split("\r\n")[0])
            end = head_end + 4 + length
            if len(buffered) >= end:
                bodies.append(buffered[head_end + 4 : end])
                buffered = buffered[end:]
                continue
        data = conn.recv(65536)
        assert data, "the server closed the connection"
        buffered += data
    return bodies


def _connect(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def test_a_large_body_arrives_in_whole_chunks_and_the_next_request_follows(
    served: tuple[Recorder, int],
) -> None:
    app, port = served
    body = os.urandom(3 * 1024 * 1024 + 7)
    with _connect(port) as conn:  # the second request right behind the body, in one send
        conn.sendall(_head(len(body)) + body + _head(5, "/next") + b"hello")
        assert _responses(conn, 2) == [str(len(body)).encode(), b"5"]
    first, second = app.seen
    assert bytes(first.body) == body and first.end == "complete"
    read = [size for kind, size in first.kinds if kind == "bytearray"]  # read by the reader
    assert max(read) == CHUNK
    assert len(first.kinds) <= len(body) // CHUNK + 3  # not one message per socket read
    assert (bytes(second.body), second.end) == (b"hello", "complete")


def test_large_bodies_one_after_another_keep_the_connection(
    served: tuple[Recorder, int],
) -> None:
    app, port = served
    bodies = [os.urandom(MIN_DIRECT + n * 100_003) for n in range(4)]
    with _connect(port) as conn:
        for body in bodies:
            conn.sendall(_head(len(body)) + body)
            assert _responses(conn, 1) == [str(len(body)).encode()]
    assert [bytes(seen.body) for seen in app.seen] == bodies


def test_bytes_that_came_before_a_disconnect_are_handed_over(
    served: tuple[Recorder, int],
) -> None:
    app, port = served
    sent = os.urandom(CHUNK * 3 + 123)  # ends inside a chunk the reader is filling
    with _connect(port) as conn:
        conn.sendall(_head(4 * MIN_DIRECT + len(sent)) + sent)
        started = time.monotonic()
        _until(lambda: app.seen and len(app.seen[0].body) == len(sent))
        assert time.monotonic() - started < PATIENCE + 2  # a partial chunk is not held back
    _until(lambda: app.seen[0].end)
    assert (bytes(app.seen[0].body), app.seen[0].end) == (sent, "disconnect")
    _until(lambda: BodyReader.reading == 0)  # a body cut short is no longer counted


@pytest.mark.parametrize(("read_ahead_bodies", "ahead"), [(0, 0), (1, 1)])
def test_a_chunk_is_read_ahead_only_while_few_bodies_are_read(
    served: tuple[Recorder, int],
    monkeypatch: pytest.MonkeyPatch,
    read_ahead_bodies: int,
    ahead: int,
) -> None:
    app, port = served
    made: list[int] = []

    def counted(size: int) -> bytearray:
        made.append(size)
        return unfilled(size)

    monkeypatch.setattr(uvicorn_reading, "unfilled", counted)
    monkeypatch.setattr(uvicorn_reading, "READ_AHEAD_BODIES", read_ahead_bodies)
    body = os.urandom(4 * CHUNK)
    with _connect(port) as conn:
        sender = threading.Thread(target=conn.sendall, args=(_head(len(body), "/hold") + body,))
        sender.start()
        assert app.holding.wait(10)
        time.sleep(0.2)  # time enough to fill a chunk read ahead from the socket's buffer
        handed = [size for kind, size in app.seen[0].kinds if kind == "bytearray"]
        assert made == handed + [CHUNK] * ahead  # beyond the app's chunks: the one read ahead
        assert BodyReader.reading == 1
        app.release.set()
        sender.join(10)
        assert _responses(conn, 1) == [str(len(body)).encode()]
    assert bytes(app.seen[0].body) == body and app.seen[0].end == "complete"
    assert BodyReader.reading == 0


def test_an_answer_before_the_body_ends_closes_the_connection(
    served: tuple[Recorder, int],
) -> None:
    _, port = served
    with _connect(port) as conn:
        conn.sendall(_head(2 * MIN_DIRECT, "/early") + os.urandom(CHUNK))
        assert _responses(conn, 1) == [b"0"]
        conn.settimeout(5)  # closed (not kept for a next request behind the body's rest)
        with contextlib.suppress(ConnectionResetError):
            assert conn.recv(65536) == b""
    _until(lambda: BodyReader.reading == 0)  # nor one the app answered before its end


def test_expect_100_continue_is_answered_before_the_body(served: tuple[Recorder, int]) -> None:
    app, port = served
    body = os.urandom(MIN_DIRECT * 2)
    with _connect(port) as conn:
        conn.sendall(_head(len(body), "/up", "Expect: 100-continue"))
        assert conn.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.sendall(body)
        assert _responses(conn, 1) == [str(len(body)).encode()]
    assert bytes(app.seen[0].body) == body


def test_small_and_chunked_bodies_go_uvicorns_way(served: tuple[Recorder, int]) -> None:
    app, port = served
    small = os.urandom(MIN_DIRECT - 1)
    pieces = [os.urandom(300_000) for _ in range(4)]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    with _connect(port) as conn:
        conn.sendall(_head(len(small)) + small)
        conn.sendall(_head(None, "/up", "Transfer-Encoding: chunked") + chunked)
        assert _responses(conn, 2) == [str(len(small)).encode(), b"1200000"]
    assert bytes(app.seen[0].body) == small and bytes(app.seen[1].body) == b"".join(pieces)
    assert {kind for seen in app.seen for kind, _ in seen.kinds} == {"bytes"}


def test_an_unfilled_chunk_is_a_plain_writable_bytearray_of_its_size() -> None:
    chunk = unfilled(CHUNK)
    assert type(chunk) is bytearray and len(chunk) == CHUNK
    chunk[:5] = b"hello"
    del chunk[5:]  # as take() cuts a chunk to what was read into it
    assert chunk == b"hello"
    assert unfilled(0) == bytearray()
