"""A small, cheap HTTP/1.1 load client: asyncio raw sockets, bodies sent with sendfile.

Request bodies go from a pre-generated file straight to the socket with ``loop.sock_sendfile``
(zero-copy ``sendfile(2)``), so the client spends almost no CPU and never holds a body in memory.
Only what the benchmark needs is parsed: the status line, headers and a length-delimited or
chunked response body. Any unexpected status fails loudly with :class:`ProtocolError`.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import urlsplit

TUS = "1.0.0"
_RECV = 64 * 1024


class ProtocolError(RuntimeError):
    """The server answered something the benchmark did not expect."""


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._sock: socket.socket | None = None
        self._buffer = b""

    async def __aenter__(self) -> Connection:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await loop.sock_connect(sock, ("127.0.0.1", self.port))
        self._sock = sock
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: tuple[BinaryIO, int, int] | None = None,
        data: bytes = b"",
    ) -> Response:
        """Send one request (body = (file, offset, count) sent with sendfile, or small
        in-memory ``data``); read its answer."""
        assert self._sock is not None, "connection not open"
        loop = asyncio.get_running_loop()
        length = body[2] if body is not None else len(data)
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {length}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        await loop.sock_sendall(self._sock, head + data)
        if body is not None and length:
            file, offset, count = body
            sent = await loop.sock_sendfile(self._sock, file, offset, count, fallback=False)
            if sent != count:
                raise ProtocolError(f"sent {sent} of {count} body bytes")
        return await self._read_response(method)

    async def _recv(self) -> bytes:
        assert self._sock is not None
        data = await asyncio.get_running_loop().sock_recv(self._sock, _RECV)
        if not data:
            raise ProtocolError("server closed the connection")
        return data

    async def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            self._buffer += await self._recv()
        data, _, self._buffer = self._buffer.partition(marker)
        return data

    async def _read_exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            self._buffer += await self._recv()
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    async def _read_response(self, method: str) -> Response:
        head = (await self._read_until(b"\r\n\r\n")).decode("latin-1")
        status_line, *header_lines = head.split("\r\n")
        response = Response(status=int(status_line.split(" ", 2)[1]))
        for line in header_lines:
            name, _, value = line.partition(":")
            response.headers[name.strip().lower()] = value.strip()
        if method == "HEAD" or response.status in (204, 304) or response.status < 200:
            return response
        if response.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self._read_until(b"\r\n")).split(b";")[0], 16)
                chunks.append(await self._read_exactly(size))
                await self._read_until(b"\r\n")
                if size == 0:
                    break
            response.body = b"".join(chunks)
        else:
            response.body = await self._read_exactly(int(response.headers.get("content-length", 0)))
        return response


def _expect(response: Response, statuses: tuple[int, ...], what: str) -> Response:
    if response.status not in statuses:
        raise ProtocolError(f"{what}: HTTP {response.status} {response.body[:300]!r}")
    return response


async def tus_upload(
    port: int, create_path: str, file: BinaryIO, offset: int, size: int, patch_size: int
) -> str:
    """Create a tus upload of ``size`` bytes and PATCH it in ``patch_size`` pieces.

    The bytes are ``file[offset:offset + size]``; one keep-alive connection carries all requests.
    Returns the upload's URL path (from ``Location``).
    """
    async with Connection(port) as conn:
        created = await conn.request(
            "POST", create_path, {"Tus-Resumable": TUS, "Upload-Length": str(size)}
        )
        _expect(created, (201,), "POST")
        path = urlsplit(created.headers["location"]).path
        sent = 0
        while sent < size:
            count = min(patch_size, size - sent)
            headers = {
                "Tus-Resumable": TUS,
                "Upload-Offset": str(sent),
                "Content-Type": "application/offset+octet-stream",
            }
            answer = await conn.request("PATCH", path, headers, (file, offset + sent, count))
            _expect(answer, (204,), f"PATCH at {sent}")
            sent += count
            if int(answer.headers.get("upload-offset", -1)) != sent:
                raise ProtocolError(f"PATCH acknowledged {answer.headers}, expected {sent}")
        return path


async def put_upload(
    port: int, paths: list[str], file: BinaryIO, offset: int, size: int, piece: int
) -> None:
    """PUT ``file[offset:offset+size]`` as consecutive ``piece``-byte requests, one per path."""
    async with Connection(port) as conn:
        for index, path in enumerate(paths):
            start = index * piece
            count = min(piece, size - start)
            answer = await conn.request("PUT", path, {}, (file, offset + start, count))
            _expect(answer, (201, 204), f"PUT {path}")
