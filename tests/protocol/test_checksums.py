from __future__ import annotations

import base64
import hashlib
import zlib

import pytest

from chunkd.exceptions import InvalidHeader, UnsupportedChecksum
from chunkd.protocol.checksums import ALGORITHMS, new_hasher, parse_upload_checksum

DATA = b"The quick brown fox jumps over the lazy dog"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("algorithm", "digest"),
    [
        ("sha1", hashlib.sha1(DATA).digest()),
        ("sha256", hashlib.sha256(DATA).digest()),
        ("md5", hashlib.md5(DATA).digest()),
        ("crc32", zlib.crc32(DATA).to_bytes(4, "big")),
        ("crc32c", bytes.fromhex("22620404")),
    ],
)
def test_parsed_checksum_matches_its_data(algorithm: str, digest: bytes) -> None:
    checksum = parse_upload_checksum(f"{algorithm} {b64(digest)}")
    assert checksum is not None
    hasher = new_hasher(algorithm)
    hasher.update(DATA[:10])
    hasher.copy().update(b"ignored: a copy is independent")
    hasher.update(DATA[10:])
    assert checksum.matches(hasher)


def test_required_algorithms_are_offered() -> None:
    assert {"sha1", "sha256", "md5", "crc32", "crc32c"} <= set(ALGORITHMS)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("sha3 AAAA", UnsupportedChecksum),
        ("sha1", InvalidHeader),
        ("sha1  x", InvalidHeader),
        ("sha1 not-base64!", InvalidHeader),
        (f"sha1 {b64(b'short')}", InvalidHeader),
        (f"SHA1 {b64(bytes(20))}", UnsupportedChecksum),
    ],
)
def test_refuses(value: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_upload_checksum(value)
