"""Digest algorithms chunkd accepts, by their tus names, and the ``Upload-Checksum`` parser.

The same registry serves per-request checksums (tus ``Upload-Checksum``) and whole-file digests.
Every hasher here exposes ``update``, ``copy`` and ``digest`` and releases the GIL on large
buffers, so hashing can run in a worker thread beside the event loop.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import crc32c as _crc32c

from chunkd.exceptions import InvalidHeader, UnsupportedChecksum


class Hasher(Protocol):
    def update(self, data: bytes, /) -> object: ...
    def copy(self) -> Hasher: ...
    def digest(self) -> bytes: ...


class _Crc32:
    """zlib.crc32 behind the hashlib interface; the digest is the big-endian 4-byte value."""

    __slots__ = ("_value",)

    def __init__(self, value: int = 0) -> None:
        self._value = value

    def update(self, data: bytes, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def copy(self) -> _Crc32:
        return _Crc32(self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


ALGORITHMS: dict[str, Callable[[], Hasher]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
    "md5": hashlib.md5,
    "crc32": _Crc32,
    "crc32c": _crc32c.CRC32CHash,
}


def new_hasher(algorithm: str) -> Hasher:
    try:
        return ALGORITHMS[algorithm]()
    except KeyError:
        raise UnsupportedChecksum(f"checksum algorithm {algorithm!r} is not supported") from None


def digest_size(algorithm: str) -> int:
    return len(new_hasher(algorithm).digest())


@dataclass(frozen=True, slots=True)
class Checksum:
    """A declared checksum: the algorithm name and the raw digest bytes."""

    algorithm: str
    digest: bytes

    def matches(self, hasher: Hasher) -> bool:
        return hasher.digest() == self.digest


def parse_upload_checksum(value: str | None) -> Checksum | None:
    """``Upload-Checksum: <algorithm> <base64 digest>``."""
    if value is None:
        return None
    parts = value.split(" ")
    if len(parts) != 2:
        raise InvalidHeader("Upload-Checksum must be '<algorithm> <base64 digest>'")
    algorithm, encoded = parts
    if algorithm not in ALGORITHMS:
        raise UnsupportedChecksum(f"checksum algorithm {algorithm!r} is not supported")
    try:
        digest = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidHeader("the Upload-Checksum digest is not base64") from None
    if len(digest) != digest_size(algorithm):
        raise InvalidHeader(f"the Upload-Checksum digest has the wrong length for {algorithm}")
    return Checksum(algorithm, digest)
