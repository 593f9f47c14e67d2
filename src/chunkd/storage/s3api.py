"""The narrow S3 interface :mod:`chunkd.storage.s3` is written against.

Only the calls the S3 backend makes, with chunkd's own small types in and out, so the SDK is
one swappable module (:mod:`chunkd.storage.s3boto`; an aiobotocore binding would implement
the same :class:`S3API`) and a test can wrap the real binding to inject faults.

Errors surface as :class:`S3Error` with the S3 error code; the two the backend branches on
have their own classes.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import IO, Protocol


class S3Error(Exception):
    """An S3 call failed; ``code`` is S3's error code (``NoSuchUpload``, ``InternalError``…)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class NoSuchUpload(S3Error):
    """The multipart upload was completed or aborted (maybe by another instance)."""


class NoSuchKey(S3Error):
    """No object under that key."""


@dataclass(frozen=True, slots=True)
class PartInfo:
    number: int
    size: int
    etag: str
    checksum: str | None = None  # base64 CRC32C, when the upload was created with checksums


@dataclass(frozen=True, slots=True)
class MultipartInfo:
    key: str
    upload_id: str
    initiated: float  # POSIX seconds


class S3API(Protocol):
    async def head_bucket(self) -> None: ...

    async def create_multipart_upload(self, key: str, *, checksums: bool) -> str:
        """Start one; returns its UploadId."""

    async def upload_part(
        self, key: str, upload_id: str, number: int, body: IO[bytes], crc32c: str | None
    ) -> None: ...

    async def upload_part_copy(
        self, key: str, upload_id: str, number: int, source: str, first: int, last: int
    ) -> PartInfo:
        """Part ``number`` := bytes ``first..last`` (inclusive) of object ``source``."""

    async def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """Every part stored so far, all pages."""

    async def complete_multipart_upload(
        self, key: str, upload_id: str, parts: Sequence[PartInfo]
    ) -> None: ...

    async def abort_multipart_upload(self, key: str, upload_id: str) -> None: ...

    async def list_multipart_uploads(self, prefix: str) -> list[MultipartInfo]: ...

    async def put_object(self, key: str, body: IO[bytes] | bytes, crc32c: str | None) -> None: ...

    def get_object(self, key: str, first: int, last: int) -> AsyncIterator[bytes]:
        """Bytes ``first..last`` (inclusive) by a ``Range`` GET, in small chunks."""

    async def head_object(self, key: str) -> int | None:
        """The object's size, or ``None`` if there is none."""

    async def list_objects(self, prefix: str) -> list[tuple[str, int, float]]:
        """``(key, size, last modified)`` of every object under ``prefix``, all pages."""

    async def delete_objects(self, keys: Sequence[str]) -> None: ...


def crc32c_base64(value: int) -> str:
    """The header form of a CRC32C: four big-endian bytes, base64."""
    return base64.b64encode(value.to_bytes(4, "big")).decode("ascii")
