"""Part bodies sent with sendfile: against the real server, and against sockets that misbehave."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from chunkd.client import Client, _sendfile, _spans
from chunkd.client._errors import Cancelled, FileChanged
from chunkd.client._sendfile import FileBody, SendfileTransport
from chunkd.client._spans import is_loopback
from chunkd.testing.server import ServerProcess

MiB = 1024 * 1024
Sent = Callable[[int], None]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("sendfile") / "data") as process:
        yield process


@pytest.fixture
def file(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    data = os.urandom(3 * MiB + 777)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    yield fd, data
    os.close(fd)


def body(fd: int, data: bytes, offset: int, length: int, sent: list[int]) -> FileBody:
    def chunks() -> Iterator[bytes]:
        yield data[offset : offset + length]

    return FileBody(fd, offset, length, chunks, sent.append)


def session(server: ServerProcess, size: int, part_size: int) -> dict[str, str]:
    created = httpx.post(
        f"{server.url}/uploads", json={"filename": "f", "size": size, "part_size": part_size}
    )
    created.raise_for_status()
    urls: dict[str, str] = created.json()["urls"]
    return urls


def put(
    transport: httpx.BaseTransport | httpx.Client, url: str, payload: FileBody
) -> httpx.Response:
    """``payload`` sent as it is (as the client's runner does), by a client around
    ``transport`` (closing it afterwards) or by the given client."""
    if isinstance(transport, httpx.BaseTransport):
        with httpx.Client(transport=transport, timeout=10) as client:
            return put(client, url, payload)
    request = transport.build_request(
        "PUT", url, headers={"Content-Length": str(payload.length)}, content=payload
    )
    request.stream = payload
    return transport.send(request)


def test_the_client_sends_parts_itself_and_they_arrive_intact(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server is on this machine: the parts are copied to the socket, not sendfile'd."""
    sent: list[int] = []

    pieces = FileBody.__iter__

    def spy(payload: FileBody) -> Iterator[bytes]:
        sent.append(payload.length)
        return pieces(payload)

    def forbidden(sock: socket.socket, fd: int, offset: int, length: int, report: Sent) -> None:
        raise AssertionError("sendfile to a server on this machine")

    monkeypatch.setattr(FileBody, "__iter__", spy)
    monkeypatch.setattr(_sendfile, "sendfile_span", forbidden)
    data = os.urandom(5 * MiB + 3)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    monkeypatch.setenv("CHUNKD_CLIENT_DIR", str(tmp_path / "state"))
    with Client(server.url, part_size=1 * MiB) as client:
        result = client.upload(path)
    assert sorted(sent) == sorted([MiB] * 5 + [3])
    assert result.sha256 == hashlib.sha256(data).hexdigest()  # verified by the server
    stored = httpx.get(f"{server.files_url}{result.id}", headers={"Tus-Resumable": "1.0.0"})
    assert stored.content == data


@pytest.mark.parametrize("copy", [True, False], ids=["copied", "sendfile"])
def test_a_span_arrives_intact_either_way(
    server: ServerProcess, file: tuple[int, bytes], monkeypatch: pytest.MonkeyPatch, copy: bool
) -> None:
    """Sendfile (a server across a network) and the copy (one on this machine), each forced
    over loopback; progress comes in slices either way."""
    fd, data = file
    used: list[str] = []

    pieces = FileBody.__iter__

    def copied(payload: FileBody) -> Iterator[bytes]:
        used.append("pieces")
        return pieces(payload)

    def sendfile(sock: socket.socket, fd: int, offset: int, length: int, report: Sent) -> None:
        used.append("sendfile")
        _spans.sendfile_span(sock, fd, offset, length, report)

    monkeypatch.setattr(FileBody, "__iter__", copied)
    monkeypatch.setattr(_sendfile, "sendfile_span", sendfile)
    urls = session(server, len(data), 4 * MiB)
    sent: list[int] = []
    transport = SendfileTransport(httpx.HTTPTransport(), copy_to_loopback=copy)
    answer = put(transport, urls["parts"].replace("{n}", "0"), body(fd, data, 0, len(data), sent))
    assert answer.status_code == 201, answer.text
    assert used == ["pieces" if copy else "sendfile"]
    assert sum(sent) == len(data) and all(0 < n <= 4 * MiB for n in sent)
    assert httpx.post(urls["complete"]).status_code == 200
    stored = httpx.get(urls["self"]).json()
    assert stored["digests"]["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("192.168.1.20", False),
        ("::ffff:10.1.2.3", False),
        ("fe80::1%eth0", False),
        ("2001:db8::1", False),
        ("localhost", False),  # getpeername gives addresses; a name is not assumed local
    ],
)
def test_loopback_is_told_from_the_peer_address(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_connections_are_kept_alive_between_parts(
    server: ServerProcess, file: tuple[int, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    fd, data = file
    urls = session(server, len(data), MiB)
    opened: list[object] = []
    connect = socket.create_connection
    monkeypatch.setattr(
        socket, "create_connection", lambda *a, **k: opened.append(a) or connect(*a, **k)
    )
    sent: list[int] = []
    with httpx.Client(transport=SendfileTransport(httpx.HTTPTransport()), timeout=10) as client:
        for index in range(4):
            start = index * MiB
            length = min(MiB, len(data) - start)
            url = urls["parts"].replace("{n}", str(index))
            answer = put(client, url, body(fd, data, start, length, sent))
            assert answer.status_code == 201, answer.text
    assert len(opened) == 1
    assert sum(sent) == len(data)
    assert httpx.post(urls["complete"]).status_code == 200


def test_an_early_refusal_is_the_answer_not_a_broken_pipe(
    server: ServerProcess, tmp_path: Path
) -> None:
    data = os.urandom(32 * MiB)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    urls = session(server, 200_000, 65536)  # part 5 does not exist: refused before its body
    fd = os.open(path, os.O_RDONLY)
    try:
        answer = put(
            SendfileTransport(httpx.HTTPTransport()),
            urls["parts"].replace("{n}", "5"),
            body(fd, data, 0, len(data), []),
        )
    finally:
        os.close(fd)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["error"]["code"] == "PART_OUT_OF_RANGE"


class _Listener:
    """A raw socket server: ``handle(connection)`` runs per connection, in a thread."""

    def __init__(self, handle: object) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._handle = handle
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()  # type: ignore[arg-type]

    def close(self) -> None:
        self.sock.close()


def _answer_then_close(connection: socket.socket) -> None:
    """Reads one request, answers it as if keeping the connection alive, then closes."""
    with connection:
        received = b""
        while b"\r\n\r\n" not in received:
            received += connection.recv(65536)
        head, _, rest = received.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def test_a_pooled_connection_the_server_closed_is_replaced(file: tuple[int, bytes]) -> None:
    fd, data = file
    listener = _Listener(_answer_then_close)
    client = httpx.Client(transport=SendfileTransport(httpx.HTTPTransport()), timeout=10)
    try:
        for _ in range(3):
            answer = put(client, f"http://127.0.0.1:{listener.port}/p", body(fd, data, 0, 1000, []))
            assert answer.status_code == 200 and answer.text == "ok"
    finally:
        client.close()
        listener.close()
    assert listener.accepted == 3


def test_a_silent_server_times_out(file: tuple[int, bytes]) -> None:
    fd, data = file
    stop = threading.Event()
    listener = _Listener(lambda connection: stop.wait())
    transport = SendfileTransport(httpx.HTTPTransport())
    try:
        with httpx.Client(transport=transport, timeout=0.3) as client:
            payload = body(fd, data, 0, 1000, [])
            request = client.build_request(
                "PUT", f"http://127.0.0.1:{listener.port}/p", content=payload
            )
            request.stream = payload
            with pytest.raises(httpx.ReadTimeout):
                client.send(request)
    finally:
        stop.set()
        transport.close()
        listener.close()


def test_a_file_shorter_than_its_span_is_a_changed_file(
    server: ServerProcess, file: tuple[int, bytes]
) -> None:
    fd, data = file
    urls = session(server, 4 * MiB, 4 * MiB)
    with pytest.raises(FileChanged):  # by sendfile; the pieces' reader has its own test
        put(
            SendfileTransport(httpx.HTTPTransport(), copy_to_loopback=False),
            urls["parts"].replace("{n}", "0"),
            body(fd, data, 0, 4 * MiB, []),  # the file has 3 MiB and a bit
        )


def test_cancelling_between_slices_stops_the_send(server: ServerProcess, tmp_path: Path) -> None:
    data = os.urandom(16 * MiB)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    urls = session(server, len(data), len(data))

    def sent(count: int) -> None:
        raise Cancelled("stop")

    fd = os.open(path, os.O_RDONLY)
    try:
        payload = FileBody(fd, 0, len(data), lambda: iter([data]), sent)
        with pytest.raises(Cancelled):
            put(
                SendfileTransport(httpx.HTTPTransport()), urls["parts"].replace("{n}", "0"), payload
            )
    finally:
        os.close(fd)


def test_other_requests_go_to_the_transport_underneath(file: tuple[int, bytes]) -> None:
    fd, data = file
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.read())
        return httpx.Response(204)

    transport = SendfileTransport(httpx.MockTransport(handler))
    sent: list[int] = []
    assert (
        put(transport, "https://example.test/p", body(fd, data, 10, 500, sent)).status_code == 204
    )
    with httpx.Client(transport=transport) as client:
        assert client.post("http://example.test/q", content=b"plain").status_code == 204
    assert seen == [data[10:510], b"plain"]
    assert sent == [500]


def test_https_goes_to_a_tls_transport_made_when_first_needed() -> None:
    seen: list[str] = []
    made: list[int] = []

    def handler(kind: str) -> httpx.MockTransport:
        return httpx.MockTransport(
            lambda r: (seen.append(f"{kind} {r.url}"), httpx.Response(204))[1]
        )

    def make_tls() -> httpx.BaseTransport:
        made.append(1)
        return handler("tls")

    transport = SendfileTransport(handler("plain"), tls=make_tls)
    with httpx.Client(transport=transport) as client:
        client.get("http://example.test/a")
        assert made == []  # no https yet: nothing made, no certificates loaded
        client.get("https://example.test/b")
        client.get("https://example.test/c")
    assert made == [1]
    assert seen == [
        "plain http://example.test/a",
        "tls https://example.test/b",
        "tls https://example.test/c",
    ]
