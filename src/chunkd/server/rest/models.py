"""Request and response bodies of the REST API, as they appear in ``/openapi.json``."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chunkd.catalog.base import Handoff
from chunkd.protocol.digests import normalize_digest


class WholeFileDigests(BaseModel):
    """Whole-file digests a client declares (hex or base64), to be verified at completion."""

    model_config = ConfigDict(extra="forbid")

    sha256: str | None = None
    crc32c: str | None = None
    md5: str | None = None

    @field_validator("sha256", "crc32c", "md5")
    @classmethod
    def _digest(cls, value: str | None, info: object) -> str | None:
        name = getattr(info, "field_name", "")
        return None if value is None else normalize_digest(name, value)

    def declared(self) -> dict[str, str]:
        """The digests given, by algorithm, as lowercase hex."""
        declared = {"sha256": self.sha256, "crc32c": self.crc32c, "md5": self.md5}
        return {name: value for name, value in declared.items() if value is not None}


class CreateSession(WholeFileDigests):
    filename: str = Field(min_length=1, max_length=1024)
    size: int = Field(ge=0, le=2**63 - 1)
    content_type: str | None = Field(None, max_length=255)
    part_size: int | None = Field(None, ge=1, le=2**63 - 1)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=64)

    @field_validator("filename")
    @classmethod
    def _filename(cls, value: str) -> str:
        if any(ord(char) < 32 for char in value):
            raise ValueError("filename must not contain control characters")
        return value


class CompleteSession(WholeFileDigests):
    """Whole-file digests a client computed while sending (it need not read the file twice)."""


class SessionUrls(BaseModel):
    self_: str = Field(alias="self")
    parts: str = Field(description="Template: replace {n} with the zero-based part index.")
    complete: str
    download: str

    model_config = ConfigDict(populate_by_name=True)


class SessionCreated(BaseModel):
    id: str
    part_size: int
    part_count: int
    expires_at: datetime | None
    urls: SessionUrls


class PartStored(BaseModel):
    index: int
    size: int
    digest: str = Field(
        description="The part's identity digest, naming its algorithm: blake3:<hex>."
    )
    new: bool = Field(description="False when the same bytes were already stored for this part.")


class UploadStatus(BaseModel):
    id: str
    protocol: str = Field(description="rest or tus")
    state: str
    filename: str | None
    content_type: str | None
    sniffed_type: str | None = Field(description="The type recognised from the first bytes.")
    size: int | None
    part_size: int | None
    part_count: int | None
    bytes_received: int
    offset: int = Field(description="Contiguous bytes received from the start of the file.")
    parts_received: int | None
    missing_parts: list[list[int]] | None = Field(
        description="Missing part indices as inclusive [first, last] ranges."
    )
    metadata: dict[str, str | None]
    digests: dict[str, str]
    expected_digests: dict[str, str]
    error: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    location: str | None = Field(description="Where to download the file, once complete.")
    handoff: HandoffStatus | None = Field(
        None,
        description="The hand-off to processing, once the upload is complete (null when the "
        "server has no processing pipeline).",
    )


class HandoffStatus(BaseModel):
    state: str = Field(description="pending, delivered, or failed (after the last try)")
    attempts: int
    last_error: str | None
    delivered_at: datetime | None

    @classmethod
    def of(cls, handoff: Handoff | None) -> HandoffStatus | None:
        if handoff is None:
            return None
        return cls(
            state=handoff.state,
            attempts=handoff.attempts,
            last_error=handoff.last_error,
            delivered_at=timestamp(handoff.delivered_at),
        )


class ErrorDetail(BaseModel):
    code: str
    message: str
    hint: str
    retryable: bool
    details: dict[str, object] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def when(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def timestamp(value: float | None) -> datetime | None:
    return None if value is None else when(value)
