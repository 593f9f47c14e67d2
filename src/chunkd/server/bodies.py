"""Request bodies as the upload service wants them: an async stream of chunks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request

from chunkd.protocol.tus.headers import parse_non_negative_int
from chunkd.uploads.receiving import BodyInterrupted


async def body_of(request: Request) -> AsyncIterator[bytes]:
    """Chunks as they arrive; ``BodyInterrupted`` when the client goes away mid-body.

    Read straight from the ASGI ``receive`` rather than through ``Request.stream``: a body
    is thousands of messages, and every layer per message shows in the throughput.
    """
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            request.scope[_DONE] = True
            raise BodyInterrupted
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            request.scope[_DONE] = True
            return


def content_length(request: Request) -> int | None:
    return parse_non_negative_int("Content-Length", request.headers.get("content-length"))


_DONE = "chunkd.body_done"
DRAIN_LIMIT = 8 * 1024 * 1024
DRAIN_SECONDS = 5.0
DRAIN_GRACE = 0.5
DRAIN_RATE = 1024 * 1024  # bytes/s below which a draining body is given up on


async def drain(request: Request) -> None:
    """Read and drop an unread body (bounded) before an error answer goes out.

    A server that answers early and closes leaves a client still sending its body with a
    broken connection instead of the answer; reading a few MiB lets it see "409" and recover
    the cheap way. Larger or slower bodies are not worth waiting for: the connection closes.
    """
    if request.method not in ("PATCH", "POST", "PUT") or request.scope.get(_DONE):
        return  # nothing left to read (waiting would only wait for the client to hang up)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > DRAIN_LIMIT:
        return
    loop = asyncio.get_running_loop()
    started = loop.time()
    read = 0
    with contextlib.suppress(RuntimeError, ClientDisconnect, TimeoutError):
        async with asyncio.timeout(DRAIN_GRACE) as deadline:
            async for chunk in request.stream():
                read += len(chunk)
                elapsed = loop.time() - started
                if read > DRAIN_LIMIT or (elapsed > DRAIN_GRACE and read < DRAIN_RATE * elapsed):
                    return  # too much, or a client too slow to be worth waiting for
                # a body that pauses is not waited for either
                deadline.reschedule(min(started + DRAIN_SECONDS, loop.time() + DRAIN_GRACE))
