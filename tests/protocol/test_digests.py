from __future__ import annotations

import base64
import hashlib

import crc32c
import pytest

from chunkd.exceptions import InvalidHeader
from chunkd.protocol.checksums import Checksum
from chunkd.protocol.digests import normalize_digest, parse_content_digest, part_checksums

DATA = b"part bytes"
SHA256 = hashlib.sha256(DATA).digest()
MD5 = hashlib.md5(DATA).digest()
CRC = crc32c.crc32c(DATA).to_bytes(4, "big")


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_content_digest() -> None:
    assert parse_content_digest(None) == []
    assert parse_content_digest(f"sha-256=:{b64(SHA256)}:") == [Checksum("sha256", SHA256)]
    both = parse_content_digest(f"sha-256=:{b64(SHA256)}:, md5=:{b64(MD5)}:")
    assert both == [Checksum("sha256", SHA256), Checksum("md5", MD5)]
    assert parse_content_digest("unixsum=:AAAA:") == []  # unknown algorithms are ignored


@pytest.mark.parametrize(
    "value",
    ["sha-256", "sha-256=abc", f"sha-256=:{b64(MD5)}:", "sha-256=:@@@:", "sha-256=:AAAA"],
)
def test_content_digest_refuses(value: str) -> None:
    with pytest.raises(InvalidHeader):
        parse_content_digest(value)


def test_all_part_headers() -> None:
    headers = {
        "content-digest": f"sha-256=:{b64(SHA256)}:",
        "content-md5": b64(MD5),
        "x-checksum-crc32c": b64(CRC),
    }
    assert {c.algorithm for c in part_checksums(headers)} == {"sha256", "md5", "crc32c"}
    with pytest.raises(InvalidHeader):
        part_checksums({"content-md5": "short"})


def test_normalize_declared_digests() -> None:
    assert normalize_digest("sha256", SHA256.hex().upper()) == SHA256.hex()
    assert normalize_digest("sha256", b64(SHA256)) == SHA256.hex()
    assert normalize_digest("crc32c", b64(CRC)) == CRC.hex()
    assert normalize_digest("md5", MD5.hex()) == MD5.hex()
    for algorithm, value in (("sha256", "abc"), ("md5", b64(SHA256)), ("crc32c", "zz")):
        with pytest.raises(ValueError):
            normalize_digest(algorithm, value)
