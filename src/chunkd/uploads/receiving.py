"""Streaming one request body into storage: bounded buffers, hashing beside the network.

The body is consumed chunk by chunk; the storage writer batches chunks and writes and hashes
each batch in a worker thread while the next arrives, so memory per request stays at a couple
of small batches however large the upload. A body that ends early — the client vanished
(:class:`BodyInterrupted`), stalled past the idle timeout, or was asked to yield its lock —
still has its received prefix flushed, so the caller can acknowledge it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from chunkd.protocol.checksums import Checksum, Hasher, new_hasher
from chunkd.storage.base import Storage
from chunkd.uploads.locking import Lease
from chunkd.uploads.models import Upload


class BodyInterrupted(Exception):
    """The request body ended before its end: the client disconnected or the read failed."""


@dataclass(frozen=True, slots=True)
class Received:
    received: int
    interrupted: bool
    checksum_ok: bool


async def receive(
    storage: Storage,
    upload: Upload,
    body: AsyncIterator[bytes],
    *,
    lease: Lease,
    limit: int,
    hashers: dict[str, Hasher] | None,
    checksum: Checksum | None,
    durable: bool,
    idle_timeout: float,
    too_much: Callable[[], Exception],
) -> Received:
    """Write ``body`` from the upload's offset; at most ``limit`` bytes or ``too_much()``."""
    request_hasher = new_hasher(checksum.algorithm) if checksum is not None else None
    observers = [hasher.update for hasher in (hashers or {}).values()]
    if request_hasher is not None:
        observers.append(request_hasher.update)
    received = 0
    interrupted = False
    async with storage.open_writer(upload.storage, upload.offset, observers) as writer:
        try:
            async with lease.receiving(idle_timeout):
                async for chunk in body:
                    received += len(chunk)
                    if received > limit:
                        raise too_much()
                    await writer.write(chunk)
                    lease.touch()
        except (TimeoutError, BodyInterrupted):
            interrupted = True
        await writer.flush(durable=durable and received > 0)
    checksum_ok = (
        checksum is not None
        and request_hasher is not None
        and not interrupted
        and checksum.matches(request_hasher)
    )
    return Received(received=received, interrupted=interrupted, checksum_ok=checksum_ok)
