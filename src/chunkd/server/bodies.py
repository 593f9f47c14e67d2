"""Request bodies as the upload service wants them: an async stream of chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request

from chunkd.protocol.tus.headers import parse_non_negative_int
from chunkd.uploads.receiving import BodyInterrupted


async def body_of(request: Request) -> AsyncIterator[bytes]:
    """Chunks as they arrive; ``BodyInterrupted`` when the client goes away mid-body."""
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise BodyInterrupted from None


def content_length(request: Request) -> int | None:
    return parse_non_negative_int("Content-Length", request.headers.get("content-length"))
