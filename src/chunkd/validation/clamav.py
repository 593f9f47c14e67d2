"""An asyncio client for the ClamAV daemon's ``INSTREAM`` and ``PING`` commands.

Written here rather than taken from PyPI: the ``clamd`` package there has had no release since
2014 and its forks (``pyclamd``, ``python-clamd``) are synchronous and as good as unmaintained;
the protocol is a few lines (``man clamd``, "COMMANDS").

``INSTREAM``: send ``zINSTREAM\\0``, then the data as chunks, each a 4-byte big-endian length
followed by that many bytes, then a zero length. clamd answers, ``\\0``-terminated, one of::

    stream: OK
    stream: Eicar-Signature FOUND
    <reason> ERROR          (e.g. "INSTREAM size limit exceeded. ERROR")

clamd refuses a stream longer than its ``StreamMaxLength`` (default 25 MB, at most 4 GB) with
such an ERROR; this client reports every ERROR, and every connection failure or time-out, as
``ScannerUnavailable`` (503, retryable): no verdict was reached.

``timeout`` bounds each step against the daemon (connecting, each write, the verdict after the
last chunk), not the whole scan, whose length depends on how fast ``chunks`` come.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, Awaitable
from dataclasses import dataclass
from typing import Final

from chunkd.exceptions import ServiceUnavailable

__all__ = ["CHUNK_LIMIT", "ClamdScanner", "ScanResult", "ScannerUnavailable"]

CHUNK_LIMIT: Final = 1024 * 1024
"""Largest chunk sent in one length-prefixed frame; larger chunks are split."""

_REPLY_LIMIT: Final = 64 * 1024


class ScannerUnavailable(ServiceUnavailable):
    code = "SCANNER_UNAVAILABLE"
    default_hint = "The virus scanner could not check the file; retry after a short wait."


@dataclass(frozen=True, slots=True)
class ScanResult:
    clean: bool
    signature: str | None = None


class ClamdScanner:
    """Scans byte streams with a clamd at ``address``: a unix socket path or ``host:port``."""

    def __init__(self, address: str, *, timeout: float = 30.0) -> None:
        if not address:
            raise ValueError("clamd address is empty: give a unix socket path or host:port")
        self.address = address
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"ClamdScanner({self.address!r}, timeout={self.timeout})"

    async def ping(self) -> None:
        """Raise ``ScannerUnavailable`` unless clamd answers PONG."""
        reader, writer = await self._connect()
        try:
            await self._send(writer, b"zPING\0")
            reply = await self._answer(self._reply(reader))
        finally:
            await _close(writer)
        if reply != "PONG":
            raise self._unavailable(f"clamd answered PING with {reply!r}")

    async def scan(self, chunks: AsyncIterable[bytes]) -> ScanResult:
        """Stream ``chunks`` to clamd and return its verdict."""
        reader, writer = await self._connect()
        # Listen from the start: clamd answers early, and hangs up, when it refuses a stream.
        answer = asyncio.ensure_future(self._reply(reader))
        try:
            try:
                await self._send(writer, b"zINSTREAM\0")
                async for chunk in chunks:
                    view = memoryview(chunk)
                    for start in range(0, len(view), CHUNK_LIMIT):
                        if answer.done():
                            raise self._refusal(answer)
                        part = view[start : start + CHUNK_LIMIT]
                        writer.write(len(part).to_bytes(4, "big"))
                        await self._send(writer, part)
                await self._send(writer, b"\0\0\0\0")
            except ScannerUnavailable as err:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(answer), min(self.timeout, 1.0))
                if answer.done():
                    raise self._refusal(answer) from err
                raise
            reply = await self._answer(asyncio.shield(answer))
        finally:
            answer.cancel()
            if answer.done() and not answer.cancelled():
                answer.exception()  # retrieved: no "exception never retrieved" in the logs
            await _close(writer)
        return self._verdict(reply)

    def _refusal(self, answer: asyncio.Future[str]) -> ScannerUnavailable:
        """clamd answered before the stream ended: say why (an ERROR, e.g. the size limit)."""
        reply = answer.result()  # raises ScannerUnavailable if it could not be read
        if reply.endswith("ERROR"):
            return self._unavailable(f"the virus scanner refused the stream: {reply}")
        return self._unavailable(f"unexpected early answer from the virus scanner: {reply!r}")

    def _verdict(self, reply: str) -> ScanResult:
        if reply == "stream: OK":
            return ScanResult(clean=True)
        if reply.startswith("stream: ") and reply.endswith(" FOUND"):
            return ScanResult(clean=False, signature=reply[len("stream: ") : -len(" FOUND")])
        if reply.endswith("ERROR"):
            raise self._unavailable(f"clamd could not scan the stream: {reply}")
        raise self._unavailable(f"unexpected answer from clamd: {reply!r}")

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(self.timeout):
                host, sep, port = self.address.rpartition(":")
                if sep and port.isdigit() and not self.address.startswith("/"):
                    return await asyncio.open_connection(
                        host.strip("[]"), int(port), limit=_REPLY_LIMIT
                    )
                return await asyncio.open_unix_connection(self.address, limit=_REPLY_LIMIT)
        except (OSError, TimeoutError) as err:
            raise self._unavailable("cannot connect to the virus scanner") from err

    async def _send(self, writer: asyncio.StreamWriter, data: bytes | memoryview) -> None:
        try:
            writer.write(data)
            async with asyncio.timeout(self.timeout):
                await writer.drain()
        except (OSError, TimeoutError) as err:
            raise self._unavailable("lost the virus scanner while sending the file") from err

    async def _reply(self, reader: asyncio.StreamReader) -> str:
        """clamd's next ``\\0``-terminated answer (callers bound the wait)."""
        try:
            raw = await reader.readuntil(b"\0")
        except asyncio.IncompleteReadError as err:
            raw = err.partial
            if not raw:
                raise self._unavailable("the virus scanner hung up without answering") from err
        except asyncio.LimitOverrunError as err:
            raise self._unavailable("the virus scanner's answer is too long") from err
        except OSError as err:
            raise self._unavailable("lost the virus scanner while waiting for its answer") from err
        return raw.rstrip(b"\0").decode("utf-8", "replace").strip()

    async def _answer(self, reply: Awaitable[str]) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                return await reply
        except TimeoutError as err:
            raise self._unavailable(
                f"no answer from the virus scanner within {self.timeout:g} s"
            ) from err

    def _unavailable(self, message: str) -> ScannerUnavailable:
        # No address in what a client sees; the cause (with it) is chained for the logs.
        return ScannerUnavailable(message)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
