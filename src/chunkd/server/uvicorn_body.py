"""uvicorn's httptools protocol, two changes to how it hands request bodies to the app.

- Bytes that arrived before the client disconnected are still handed over: uvicorn reports
  the disconnect and drops them, which would lose bytes tus promises to keep (granian hands
  them over). tests/e2e/test_durability.py runs against both servers and catches a change.
- Body chunks are kept as the parser delivers them, not appended to a ``bytearray`` that is
  then copied into ``bytes``: a message of one chunk is handed over as it is, several are
  joined once. That is two copies of every byte fewer, which shows on uploads at hundreds
  of MB/s.

Both lean on uvicorn's ``RequestResponseCycle.body`` (appended with ``+=``, measured with
``len``, handed over with ``bytes()``, reset to a ``bytearray``); ``pyproject.toml`` pins
uvicorn below 1.0 and the e2e suite runs every upload path on uvicorn.
"""

from __future__ import annotations

from typing import Any, Self

from uvicorn.protocols.http import httptools_impl as impl


class BodyChunks:
    """The body received so far, as the parser's chunks: ``+=``, ``len``, ``bytes()``."""

    __slots__ = ("_chunks", "_size")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0

    def __iadd__(self, chunk: bytes) -> Self:
        self._chunks.append(chunk)
        self._size += len(chunk)
        return self

    def __len__(self) -> int:
        return self._size

    def __bytes__(self) -> bytes:
        chunks = self._chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _Cycle(impl.RequestResponseCycle):
    async def receive(self) -> Any:
        if self.disconnected and self.body and not self.response_complete:
            body = bytes(self.body)
            self.body = BodyChunks()  # type: ignore[assignment]
            return {"type": "http.request", "body": body, "more_body": True}
        message = await super().receive()
        self.body = BodyChunks()  # type: ignore[assignment]  # uvicorn left a bytearray
        return message


class Protocol(impl.HttpToolsProtocol):
    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if type(self.cycle) is impl.RequestResponseCycle:
            self.cycle.__class__ = _Cycle
            self.cycle.body = BodyChunks()  # type: ignore[assignment]
