"""Streaming one request body into storage: bounded buffers, hashing beside the network.

The body is consumed chunk by chunk; the storage writer batches chunks and writes and hashes
each batch in a worker thread while the next arrives, so memory per request stays at a couple
of small batches however large the upload. A body that ends early — the client vanished
(:class:`BodyInterrupted`), stalled past the idle timeout, or was asked to yield its lock —
still has its received prefix flushed, so the caller can acknowledge it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass

from chunkd.protocol.checksums import Checksum, Hasher, new_hasher
from chunkd.storage.base import Handle, Storage
from chunkd.uploads.locking import Lease


class BodyInterrupted(Exception):
    """The request body ended before its end: the client disconnected or the read failed."""


@dataclass(frozen=True, slots=True)
class Received:
    received: int
    interrupted: bool
    checksums_ok: bool  # every declared checksum matched (vacuously true when none)


async def receive(
    storage: Storage,
    handle: Handle,
    offset: int,
    body: AsyncIterator[bytes],
    *,
    lease: Lease,
    limit: int,
    hashers: Iterable[Hasher],
    checksums: Sequence[Checksum],
    durable: bool,
    idle_timeout: float,
    too_much: Callable[[], Exception],
) -> Received:
    """Write ``body`` at ``offset``; at most ``limit`` bytes, else ``too_much()`` is raised.

    ``hashers`` see every byte stored (whole-file or part digests); each declared checksum is
    checked against the body.
    """
    checking = [(checksum, new_hasher(checksum.algorithm)) for checksum in checksums]
    observers = [hasher.update for hasher in hashers]
    observers.extend(hasher.update for _, hasher in checking)
    received = 0
    interrupted = False
    async with storage.open_writer(handle, offset, observers) as writer:
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
        # What the writer holds is what was stored: count from it, not from the loop above,
        # which a cancellation may have left mid-chunk.
        received = await writer.flush(durable=durable and received > 0) - offset
    checksums_ok = all(checksum.matches(hasher) for checksum, hasher in checking)
    return Received(received=received, interrupted=interrupted, checksums_ok=checksums_ok)
