"""Per-request digest headers of the REST API, and declared whole-file digests.

- ``Content-Digest`` (RFC 9530): ``sha-256=:<base64>:, sha-512=:<base64>:``; algorithms we
  do not know are ignored, as the RFC asks.
- ``Content-MD5`` (RFC 1864): base64 of the MD5 of the body.
- ``X-Checksum-Crc32c``: base64 of the big-endian CRC32C of the body (as Google Cloud Storage).

Whole-file digests declared at session creation may be hex or base64; they are kept as hex.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

from chunkd.exceptions import InvalidHeader
from chunkd.protocol.checksums import Checksum, digest_size

_RFC9530 = {
    "sha-256": "sha256",
    "sha-512": "sha512",
    "md5": "md5",
    "sha": "sha1",
    "crc32c": "crc32c",
}
_MEMBER = re.compile(r"\s*([a-z0-9-]+)\s*=\s*:([A-Za-z0-9+/=]*):\s*")


def _decode(header: str, algorithm: str, encoded: str) -> Checksum:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidHeader(f"{header} is not valid base64") from None
    if len(raw) != digest_size(algorithm):
        raise InvalidHeader(f"{header} has the wrong length for {algorithm}")
    return Checksum(algorithm, raw)


def parse_content_digest(value: str | None) -> list[Checksum]:
    if value is None:
        return []
    checksums = []
    for member in value.split(","):
        match = _MEMBER.fullmatch(member)
        if match is None:
            raise InvalidHeader("Content-Digest must be like sha-256=:<base64>:")
        algorithm = _RFC9530.get(match.group(1).lower())
        if algorithm is not None:
            checksums.append(_decode("Content-Digest", algorithm, match.group(2)))
    return checksums


def part_checksums(headers: Mapping[str, str]) -> list[Checksum]:
    """Every digest a part request declares, from any of the supported headers."""
    checksums = parse_content_digest(headers.get("content-digest"))
    if "content-md5" in headers:
        checksums.append(_decode("Content-MD5", "md5", headers["content-md5"].strip()))
    if "x-checksum-crc32c" in headers:
        checksums.append(_decode("X-Checksum-Crc32c", "crc32c", headers["x-checksum-crc32c"]))
    return checksums


DECLARABLE = ("sha256", "crc32c", "md5")


def normalize_digest(algorithm: str, value: str) -> str:
    """A declared whole-file digest, hex or base64, as lowercase hex (``ValueError`` if bad)."""
    size = digest_size(algorithm)
    text = value.strip()
    if re.fullmatch(r"[0-9a-fA-F]+", text) and len(text) == size * 2:
        return text.lower()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise ValueError(f"{algorithm} must be {size * 2} hex digits or {size} bytes in base64")
    return raw.hex()
