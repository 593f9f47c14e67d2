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
from typing import TYPE_CHECKING

from chunkd.protocol.checksums import Checksum, Hasher, new_hasher
from chunkd.storage.base import Handle, Storage
from chunkd.uploads.locking import Lease

if TYPE_CHECKING:
    from chunkd.uploads.inspection import Screen


class BodyInterrupted(Exception):
    """The request body ended before its end: the client disconnected or the read failed."""


class _TooSlow(Exception):
    pass


class RateFloor:
    """Ends a body that trickles: below ``min_rate`` bytes/s over any ``window`` seconds.

    The idle timeout catches a body that stops; this catches one that never quite stops
    (a byte every few seconds holds a connection and a lock for days otherwise).
    """

    def __init__(self, min_rate: float, window: float, clock: Callable[[], float]) -> None:
        self._min_rate = min_rate
        self._window = window
        self._clock = clock
        self._start = clock()
        self._bytes = 0

    def feed(self, size: int) -> None:
        if self._min_rate <= 0:
            return
        self._bytes += size
        elapsed = self._clock() - self._start
        if elapsed >= self._window:
            if self._bytes / elapsed < self._min_rate:
                raise _TooSlow
            self._start, self._bytes = self._clock(), 0


@dataclass(frozen=True, slots=True)
class Received:
    received: int
    interrupted: bool  # cut off, stalled, taken over, or too slow: ``received`` is a prefix
    checksums_ok: bool  # every declared checksum matched (vacuously true when none)
    too_slow: bool = False


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
    floor: RateFloor | None = None,
    screen: Screen | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Received:
    """Write ``body`` at ``offset``; at most ``limit`` bytes, else ``too_much()`` is raised.

    ``hashers`` see every byte stored (whole-file or part digests); each declared checksum is
    checked against the body.
    """
    checking = [(checksum, new_hasher(checksum.algorithm)) for checksum in checksums]
    observers = [hasher.update for hasher in hashers]
    observers.extend(hasher.update for _, hasher in checking)
    received = 0
    interrupted = too_slow = False
    if screen is not None:
        await screen.prepare(storage)
    async with storage.open_writer(handle, offset, observers) as writer:
        try:
            async with lease.receiving(idle_timeout):
                async for chunk in body:
                    received += len(chunk)
                    if received > limit:
                        raise too_much()
                    if screen is not None:
                        screen.feed(chunk)  # judges the file's head before it is written
                    await writer.write(chunk)
                    lease.touch()
                    if floor is not None:
                        floor.feed(len(chunk))
                    if on_bytes is not None:
                        on_bytes(received)
                if screen is not None:
                    screen.end()
        except (TimeoutError, BodyInterrupted):
            interrupted = True
        except _TooSlow:
            interrupted = too_slow = True
        # What the writer holds is what was stored: count from it, not from the loop above,
        # which a cancellation may have left mid-chunk.
        received = await writer.flush(durable=durable and received > 0) - offset
    checksums_ok = all(checksum.matches(hasher) for checksum, hasher in checking)
    return Received(received, interrupted, checksums_ok, too_slow)
