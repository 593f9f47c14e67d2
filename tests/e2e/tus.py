"""Helpers for end-to-end tests: a little tus over httpx, and raw-socket PATCHes that can be
cut off or stalled mid-body (which no HTTP client library does on purpose)."""

from __future__ import annotations

import hashlib
import socket
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import httpx

from chunkd.testing.server import ServerProcess

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def create(client: httpx.Client, server: ServerProcess, length: int) -> str:
    created = client.post(server.files_url, headers={**TUS, "Upload-Length": str(length)})
    assert created.status_code == 201, created.text
    location: str = created.headers["Location"]
    return location


def offset_of(client: httpx.Client, location: str) -> int:
    answer = client.head(location, headers=TUS)
    assert answer.status_code == 200, answer.status_code
    return int(answer.headers["Upload-Offset"])


def patch(client: httpx.Client, location: str, offset: int, body: bytes) -> httpx.Response:
    return client.patch(location, content=body, headers={**PATCH, "Upload-Offset": str(offset)})


def finish(client: httpx.Client, location: str, source: bytes, chunk: int = 4 << 20) -> None:
    """Resume from the server's offset until the upload is complete, as a tus client does:
    a 409 (a request we took over saved its prefix meanwhile) means ask HEAD again."""
    offset = offset_of(client, location)
    conflicts = 0
    while offset < len(source):
        answer = patch(client, location, offset, source[offset : offset + chunk])
        if answer.status_code == 409 and conflicts < 3:
            conflicts += 1
            offset = offset_of(client, location)
            continue
        assert answer.status_code == 204, (answer.status_code, answer.text)
        new_offset = int(answer.headers["Upload-Offset"])
        assert new_offset > offset
        offset = new_offset
    assert offset == len(source)


def download(client: httpx.Client, location: str) -> bytes:
    answer = client.get(location)
    assert answer.status_code == 200, (answer.status_code, answer.text)
    return answer.content


def assert_stored(client: httpx.Client, location: str, source: bytes) -> None:
    """The finished upload is byte-identical to ``source`` and its digest says so too."""
    head = client.head(location, headers=TUS)
    assert head.headers["Upload-Offset"] == str(len(source))
    stored = download(client, location)
    assert len(stored) == len(source)
    assert sha256(stored) == sha256(source)
    assert client.get(location).headers["ETag"] == f'"{sha256(source)}"'


def wait_for_offset(
    client: httpx.Client, location: str, expected: int, timeout: float = 2.0
) -> int:
    """Poll HEAD until it reports ``expected`` (the server saw a disconnect or a timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        offset = offset_of(client, location)
        if offset == expected or time.monotonic() > deadline:
            return offset
        time.sleep(0.02)


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]


class RawPatch:
    """A PATCH over a plain socket: the headers announce ``length`` body bytes, and the test
    decides how many are really sent, when, and whether the connection is then closed."""

    def __init__(
        self, location: str, offset: int, length: int, sock: socket.socket | None = None
    ) -> None:
        """``sock``: an open connection to send it on (a new one if ``None``)."""
        url = urlsplit(location)
        assert url.hostname is not None and url.port is not None
        self.sock = sock or socket.create_connection((url.hostname, url.port), timeout=10)
        head = (
            f"PATCH {url.path} HTTP/1.1\r\n"
            f"Host: {url.netloc}\r\n"
            "Tus-Resumable: 1.0.0\r\n"
            "Content-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: {offset}\r\n"
            f"Content-Length: {length}\r\n"
            "\r\n"
        )
        self.sock.sendall(head.encode("ascii"))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_unless_closed(self, data: bytes) -> bool:
        """Send ``data``; ``False`` if the server answered early and closed the connection."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def cut(self) -> None:
        """Vanish mid-body: close the connection (a FIN after the bytes already sent)."""
        self.sock.close()

    def response(self, timeout: float) -> RawResponse | None:
        """The server's answer within ``timeout`` seconds, or ``None`` if it closed without
        one (or reset the connection). Raises ``TimeoutError`` if neither happened."""
        self.sock.settimeout(timeout)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                piece = self.sock.recv(65536)
                if not piece:
                    return None
                data += piece
        except ConnectionResetError:
            return None
        status_line, *lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return RawResponse(int(status_line.split()[1]), headers)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
