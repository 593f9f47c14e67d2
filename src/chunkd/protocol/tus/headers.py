"""Strict parsers for tus request headers.

Each parser takes the raw header value (``None`` when absent) and returns a typed value or
raises :class:`chunkd.exceptions.InvalidHeader`. Nothing here touches an upload, so a refused
header can never change one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import unquote, urlsplit

from chunkd.exceptions import InvalidConcatenation, InvalidHeader, VersionUnsupported
from chunkd.protocol.tus.constants import TUS_VERSION

# "The value MUST be a non-negative integer": plain decimal digits, no sign, no leading zero,
# no fraction; 19 digits bounds it to what a signed 64-bit offset can hold.
_NON_NEGATIVE_INT = re.compile(r"(?:0|[1-9][0-9]{0,18})")
MAX_INT64 = 2**63 - 1


def parse_non_negative_int(name: str, value: str | None) -> int | None:
    """Upload-Length / Upload-Offset: a non-negative integer, or ``None`` when absent."""
    if value is None:
        return None
    if not _NON_NEGATIVE_INT.fullmatch(value):
        raise InvalidHeader(f"{name} must be a non-negative integer without sign or leading zeros")
    number = int(value)
    if number > MAX_INT64:
        raise InvalidHeader(f"{name} is larger than 2^63-1")
    return number


def require_tus_resumable(value: str | None) -> None:
    """Every request but OPTIONS carries ``Tus-Resumable``; we speak 1.0.0 only (412 otherwise)."""
    if value is None:
        raise VersionUnsupported("Tus-Resumable header is missing")
    if value != TUS_VERSION:
        raise VersionUnsupported(f"Tus-Resumable {value!r} is not supported")


def parse_defer_length(value: str | None) -> bool:
    """``Upload-Defer-Length: 1`` is the only value the specification allows."""
    if value is None:
        return False
    if value != "1":
        raise InvalidHeader("Upload-Defer-Length must be 1")
    return True


@dataclass(frozen=True, slots=True)
class Concat:
    """A parsed ``Upload-Concat`` header: a partial upload, or a final one joining ``parts``."""

    partial: bool
    parts: tuple[str, ...] = ()


def parse_concat(value: str | None, files_path: str) -> Concat | None:
    """``partial`` or ``final;<url> <url> ...``; each URL must name an upload of this server.

    ``files_path`` is the path of the tus collection (e.g. ``/files/``); the returned parts are
    upload ids (syntax-checked here, existence checked by the upload service).
    """
    if value is None:
        return None
    if value == "partial":
        return Concat(partial=True)
    if not value.startswith("final;"):
        raise InvalidConcatenation("Upload-Concat must be 'partial' or 'final;<urls>'")
    urls = value[len("final;") :].split()
    if not urls:
        raise InvalidConcatenation("a final upload must name at least one partial upload")
    return Concat(partial=False, parts=tuple(_upload_id_from_url(url, files_path) for url in urls))


def _upload_id_from_url(url: str, files_path: str) -> str:
    path = unquote(urlsplit(url).path)
    if not path.startswith(files_path):
        raise InvalidConcatenation(f"{url!r} is not an upload of this server")
    upload_id = path[len(files_path) :]
    if not is_valid_upload_id(upload_id):
        raise InvalidConcatenation(f"{url!r} is not an upload of this server")
    return upload_id


_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


def is_valid_upload_id(value: str) -> bool:
    """Upload ids are 32 lowercase hex digits; anything else is unknown before any lookup."""
    return _UPLOAD_ID.fullmatch(value) is not None


def format_expires(timestamp: float) -> str:
    """``Upload-Expires`` uses the RFC 9110 HTTP-date format."""
    return format_datetime(datetime.fromtimestamp(timestamp, UTC), usegmt=True)
