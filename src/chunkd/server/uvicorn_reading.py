"""Large request bodies read from the socket straight into the chunks handed to the app.

uvicorn reads every byte into the event loop's buffer, copies it into a new ``bytes`` for
``data_received``, has the parser copy it again into another for each body callback, and
hands the app whatever arrived since it last asked (often 64 KiB). For a body declaring a
``Content-Length`` of at least :data:`MIN_DIRECT` bytes, once its headers are parsed the
connection's protocol is swapped for a :class:`BodyReader`, an ``asyncio.BufferedProtocol``:
the loop reads from the socket into a chunk of :data:`CHUNK` bytes that becomes the app's
message as it is, with no copy and one message per chunk. Reading pauses while a full
chunk waits for the app. A chunk not yet full is handed over :data:`PATIENCE` seconds after
its first byte, so a slow client's bytes are stored (and acknowledged, and count as activity)
as they come.

Once the app takes a full chunk, a reader goes on into the next at once while at most
:data:`READ_AHEAD_BODIES` bodies are being read: the chunk is often full by the time the app
asks, and one 1 GiB PATCH took 0.87 CPU-seconds without it against 0.79. With more bodies at
once, the next chunk is only allocated, and read into, when the app asks for it (the socket's
own buffer holds what arrives meanwhile): 32 uploads of 32 MiB at once, waiting on their
hashing and disk writes, held a chunk each read ahead for nothing, and the server's peak RSS
went from 99.2 to 94.4 MiB without them at the same speed (``bench/ab_bench.py``, ten runs).

The reader never asks the socket for more than the body's remaining bytes: once the body is
read, whatever follows on the connection (a next request) is parsed by a fresh parser, as
the old one was left expecting the body. Until then the connection is not kept alive, so an
answer sent before the body's end (an error, a takeover) closes it. Side by side with
uvicorn's reading (docs/benchmarks.md): 32 uploads of 32 MiB at once, like-for-like, 1.09x
the throughput for 7 % less server CPU; single uploads as fast, for 7-10 % less.

Leans on uvicorn's ``HttpToolsProtocol`` and ``RequestResponseCycle`` internals like
:mod:`chunkd.server.uvicorn_body`; tests/server/test_uvicorn_reading.py runs a real uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
from typing import Any

import httptools

from chunkd.server.uvicorn_body import BodyChunks, Protocol, _Cycle

MIN_DIRECT = 256 * 1024
CHUNK = 256 * 1024
PATIENCE = 0.02
READ_AHEAD_BODIES = 4

_new_bytearray = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_ssize_t)(
    ("PyByteArray_FromStringAndSize", ctypes.pythonapi)
)


def unfilled(size: int) -> bytearray:
    """A ``bytearray`` of ``size`` bytes as the allocator left them, not zero-filled.

    ``bytearray(size)`` clears every byte only for the socket read to overwrite it: 10 us a
    chunk, 7-8 % of the event loop's thread with 32 uploads at once (perf). A chunk is only
    ever handed over cut to the bytes read into it (:meth:`BodyReader.take`), so what the
    allocator left behind is never seen.
    """
    chunk: bytearray = _new_bytearray(None, size)
    return chunk


class BodyReader(asyncio.BufferedProtocol):
    """The connection's protocol while the rest of one body is read into chunks."""

    reading = 0  # bodies being read now, by every reader in this process
    _counted = False

    def __init__(self, owner: ReadingProtocol, cycle: _ReadingCycle, remaining: int) -> None:
        BodyReader.reading += 1
        self._counted = True
        self._owner = owner
        self._cycle = cycle
        self._transport = owner.transport
        self.unread = remaining  # body bytes not yet in a chunk
        self._chunk: bytearray | None = unfilled(min(CHUNK, remaining))
        self.filled = 0
        self._paused = False
        self._timer: asyncio.TimerHandle | None = None

    def get_buffer(self, sizehint: int) -> memoryview:
        assert self._chunk is not None, "reading resumes only with a chunk to read into"
        return memoryview(self._chunk)[self.filled :]

    def buffer_updated(self, nbytes: int) -> None:
        assert self._chunk is not None
        self.filled += nbytes
        self.unread -= nbytes
        if self.filled == len(self._chunk):
            self._cancel_timer()
            self._transport.pause_reading()  # until the app takes this chunk
            self._paused = True
            self._cycle.message_event.set()
        elif self._timer is None:
            self._timer = self._owner.loop.call_later(PATIENCE, self._cycle.message_event.set)

    def take(self) -> bytearray:
        """The chunk read so far (not empty). A reader still reading (the chunk was handed
        over unfilled, out of patience) goes on into a new chunk at once, and so does one
        among few bodies; one paused on a full chunk among many stays paused, holding no
        chunk, until the app asks for more (:meth:`more`)."""
        chunk = self._chunk
        assert chunk is not None
        if self.filled < len(chunk):
            del chunk[self.filled :]
        self._cancel_timer()
        self.filled = 0
        self._chunk = None
        if not self._paused or BodyReader.reading <= READ_AHEAD_BODIES:
            self.more()
        return chunk

    def more(self) -> None:
        """Read on, into a new chunk, if the last one was taken and the body has bytes left."""
        if self._chunk is not None or self.unread <= 0:
            return
        self._chunk = unfilled(min(CHUNK, self.unread))
        if self._paused:
            self._paused = False
            self._transport.resume_reading()

    def eof_received(self) -> None:
        self._owner.eof_received()  # the transport closes (a half-closed body is cut short)

    def done(self) -> None:
        """The body was read to its end, or will not be: no longer counted as reading."""
        if self._counted:
            self._counted = False
            BodyReader.reading -= 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.done()
        self._cancel_timer()
        self._owner.connection_lost(exc)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _ReadingCycle(_Cycle):
    reader: BodyReader | None = None
    owner: ReadingProtocol

    async def receive(self) -> Any:
        reader = self.reader
        if reader is None:
            return await super().receive()
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.waiting_for_100_continue = False
        if self.body:  # what the parser received with the headers
            body = bytes(self.body)
            self.body = BodyChunks()  # type: ignore[assignment]
            return {"type": "http.request", "body": body, "more_body": True}
        reader.more()
        while not reader.filled and not (self.disconnected or self.response_complete):
            self.message_event.clear()
            await self.message_event.wait()
        if not reader.filled:  # bytes that arrived before a disconnect were handed over
            reader.done()
            self.reader = None
            return {"type": "http.disconnect"}
        chunk = reader.take()
        if reader.unread:
            return {"type": "http.request", "body": chunk, "more_body": True}
        reader.done()
        self.reader = None
        self.more_body = False
        if not self.disconnected:
            self.owner.body_read(self)
        return {"type": "http.request", "body": chunk, "more_body": False}


class ReadingProtocol(Protocol):
    """uvicorn's protocol (as changed by :mod:`chunkd.server.uvicorn_body`), reading large
    bodies with a :class:`BodyReader`."""

    _declared = 0  # the body length of the request whose headers were just parsed
    _parsed = 0  # of it, bytes the parser has seen
    _keep_alive = False

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._declared = self._parsed = 0
        cycle = self.cycle
        if (
            type(cycle) is not _Cycle
            or self.pipeline
            or self.parser.should_upgrade()
            or self.scheme != "http"
            or self.scope["method"] not in ("PATCH", "POST", "PUT")
        ):
            return
        declared = b""
        for name, value in self.headers:
            if name == b"transfer-encoding":
                return
            if name == b"content-length":
                declared = value
        if declared.isdigit() and int(declared) >= MIN_DIRECT:
            self._declared = int(declared)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._parsed += len(body)

    def on_message_complete(self) -> None:
        self._declared = 0
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._declared:
            return
        remaining, self._declared = self._declared - self._parsed, 0
        cycle = self.cycle
        if remaining <= 0 or cycle.response_complete or self.transport.is_closing():
            return
        cycle.__class__ = _ReadingCycle
        assert isinstance(cycle, _ReadingCycle)
        cycle.owner = self
        cycle.reader = BodyReader(self, cycle, remaining)
        self._keep_alive, cycle.keep_alive = cycle.keep_alive, False  # until the body's end
        self.transport.set_protocol(cycle.reader)
        self.flow.read_paused = True  # uvicorn resumes it when the response is complete
        self.transport.resume_reading()

    def body_read(self, cycle: _ReadingCycle) -> None:
        """The body was read to its end: what follows is a new request, for a new parser."""
        self.transport.pause_reading()
        self.transport.set_protocol(self)
        cycle.keep_alive = self._keep_alive
        self.parser = httptools.HttpRequestParser(self)
        with contextlib.suppress(AttributeError):  # as uvicorn does (httptools < 0.6.3)
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)

    def shutdown(self) -> None:
        self._keep_alive = False  # a body still being read: its connection closes after it
        super().shutdown()
