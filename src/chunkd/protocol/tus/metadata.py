"""The ``Upload-Metadata`` codec: ``key base64value`` pairs separated by commas.

Keys are non-empty ASCII without spaces or commas and unique; values are strict base64 of UTF-8
text, or absent (a key alone). Anything else is refused rather than guessed at.
"""

from __future__ import annotations

import base64
import binascii
import re

from chunkd.exceptions import InvalidMetadata

_KEY = re.compile(r"[!-+\--~]+")  # printable ASCII except space and comma
MAX_HEADER_BYTES = 16 * 1024


def parse_metadata(value: str | None) -> dict[str, str | None]:
    if value is None or value.strip() == "":
        return {}
    if len(value) > MAX_HEADER_BYTES:
        raise InvalidMetadata("Upload-Metadata is larger than 16 KiB")
    result: dict[str, str | None] = {}
    for pair in value.split(","):
        parts = pair.lstrip().split(" ")
        if len(parts) > 2 or not _KEY.fullmatch(parts[0]):
            raise InvalidMetadata(f"malformed Upload-Metadata pair {pair.strip()!r}")
        key = parts[0]
        if key in result:
            raise InvalidMetadata(f"Upload-Metadata key {key!r} appears twice")
        result[key] = _decode_value(key, parts[1]) if len(parts) == 2 else None
    name = result.get("filename")
    if name is not None and (len(name) > 1024 or any(ord(char) < 32 for char in name)):
        raise InvalidMetadata("the filename has control characters or is over 1024 characters")
    return result


def _decode_value(key: str, encoded: str) -> str:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidMetadata(f"the value of Upload-Metadata key {key!r} is not base64") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidMetadata(f"the value of Upload-Metadata key {key!r} is not UTF-8") from None


def format_metadata(metadata: dict[str, str | None]) -> str:
    pairs = []
    for key, value in metadata.items():
        if value is None:
            pairs.append(key)
        else:
            pairs.append(f"{key} {base64.b64encode(value.encode()).decode('ascii')}")
    return ",".join(pairs)
