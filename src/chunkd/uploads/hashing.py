"""Whole-file digests computed while bytes stream in, kept between requests.

Hash state cannot be stored in the catalog, so it lives here, keyed by upload and by the offset
it covers. A request hashes into copies and only a committed append replaces the entry, so a
refused or interrupted request never leaves bytes in a digest that are not in the file. When the
state is missing (a restart, an evicted entry) the digest is recomputed from storage once, at
completion — the only time the server reads an upload back.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chunkd.protocol.checksums import Hasher, new_hasher
from chunkd.storage.base import Handle, SupportsDownload

if TYPE_CHECKING:
    from chunkd.uploads.models import Upload

_SPAN = 64 * 1024 * 1024  # hashing stored bytes: a cancelled request stops after one span


@dataclass(frozen=True, slots=True)
class Running:
    offset: int
    hashers: dict[str, Hasher]

    def fork(self) -> dict[str, Hasher]:
        return {name: hasher.copy() for name, hasher in self.hashers.items()}


class DigestCache:
    def __init__(self, algorithms: tuple[str, ...], capacity: int = 4096) -> None:
        self.algorithms = algorithms
        self._capacity = capacity
        self._entries: OrderedDict[str, Running] = OrderedDict()

    def for_upload(self, expected: dict[str, str]) -> tuple[str, ...]:
        """The server's algorithms plus any the client declared a digest in."""
        return tuple(dict.fromkeys((*self.algorithms, *expected)))

    def start(
        self, upload_id: str, offset: int, algorithms: tuple[str, ...] | None = None
    ) -> dict[str, Hasher] | None:
        """Hashers to feed the bytes from ``offset`` into, or ``None`` if the state is lost."""
        algorithms = self.algorithms if algorithms is None else algorithms
        if not algorithms:
            return None
        if offset == 0:
            return {name: new_hasher(name) for name in algorithms}
        running = self._entries.get(upload_id)
        if running is None or running.offset != offset:
            return None
        return running.fork()

    def commit(self, upload_id: str, offset: int, hashers: dict[str, Hasher] | None) -> None:
        if hashers is None:
            self._entries.pop(upload_id, None)
            return
        self._entries[upload_id] = Running(offset, hashers)
        self._entries.move_to_end(upload_id)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def take(self, upload_id: str, offset: int) -> dict[str, Hasher] | None:
        """Remove and return the state if it covers exactly ``offset`` bytes."""
        running = self._entries.pop(upload_id, None)
        if running is None or running.offset != offset:
            return None
        return running.hashers

    def forget(self, upload_id: str) -> None:
        self._entries.pop(upload_id, None)

    def recorded(self, upload: Upload) -> dict[str, str] | None:
        """The whole-file digests the upload needs, if its record holds them all for its full
        length (another worker's frontier or catch-up recorded them with the final offset)."""
        algorithms = self.for_upload(upload.expected_digests)
        if upload.offset != upload.length or not set(algorithms) <= set(upload.digests):
            return None
        return {name: upload.digests[name] for name in algorithms}

    def peek(self, upload_id: str) -> Running | None:
        """The running state kept for the upload, as it is (not a copy: do not feed it)."""
        return self._entries.get(upload_id)

    def holds(self, upload_id: str) -> bool:
        """Whether a running state of the upload is kept here (at whatever offset)."""
        return upload_id in self._entries


def hex_digests(hashers: dict[str, Hasher]) -> dict[str, str]:
    """Each hasher's digest, as the hex the record and the API carry."""
    return {name: hasher.digest().hex() for name, hasher in hashers.items()}


async def hash_stored(
    storage: SupportsDownload, handle: Handle, length: int, algorithms: Iterable[str]
) -> dict[str, str]:
    """Hex digests of the first ``length`` stored bytes, read back once."""
    hashers = {name: new_hasher(name) for name in algorithms}
    updates = [hasher.update for hasher in hashers.values()]
    for start in range(0, length, _SPAN):
        await storage.feed(handle, start, min(start + _SPAN, length), updates)
    return hex_digests(hashers)
