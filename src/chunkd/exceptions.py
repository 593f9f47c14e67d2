"""The one error catalogue of chunkd, shared by the tus and REST protocol layers.

Every failure the upload core can report is a subclass of ``ChunkdError`` carrying a stable
``code``, the HTTP ``status`` it maps to, whether a client may simply ``retry``, and a ``hint``
for the human reading it::

    ChunkdError
    ├── BadRequest (400)          InvalidHeader, InvalidMetadata, UnsupportedChecksum,
    │                             InvalidConcatenation, LengthAlreadySet, LengthRequired,
    │                             PartOutOfRange, PartSizeMismatch, PartChecksumMismatch
    ├── Unauthorized (401)
    ├── Forbidden (403)           FinalUploadImmutable, InsufficientScope, QuotaExceeded
    ├── UploadNotFound (404)
    ├── RequestTooSlow (408)
    ├── Conflict (409)            OffsetMismatch, UploadNotReceiving, UploadIncomplete,
    │                             MissingParts, PartConflict, NotASession
    ├── Gone (410)                UploadExpired, UploadAborted
    ├── VersionUnsupported (412)
    ├── TooLarge (413)            UploadTooLarge, LengthExceeded
    ├── UnsupportedMediaType (415)
    ├── Unprocessable (422)       ValidationFailed, DigestMismatch
    ├── UploadLocked (423)
    ├── RateLimited (429)
    ├── ChecksumMismatch (460)
    └── ServiceUnavailable (503)  StorageUnavailable
"""

from __future__ import annotations

from typing import ClassVar


class ChunkdError(Exception):
    """Base of every error chunkd reports to a client."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False
    default_hint: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.details = details

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "retryable": self.retryable,
        }
        if self.details:
            body["details"] = self.details
        return body


class BadRequest(ChunkdError):
    code = "BAD_REQUEST"
    status = 400


class InvalidHeader(BadRequest):
    code = "INVALID_HEADER"
    default_hint = "Check the header against the tus 1.0.0 specification."


class InvalidMetadata(BadRequest):
    code = "INVALID_METADATA"
    default_hint = "Upload-Metadata is 'key base64value' pairs separated by commas, keys unique."


class UnsupportedChecksum(BadRequest):
    code = "UNSUPPORTED_CHECKSUM"
    default_hint = "Use one of the algorithms listed in Tus-Checksum-Algorithm."


class InvalidConcatenation(BadRequest):
    code = "INVALID_CONCATENATION"
    default_hint = "A final upload joins finished partial uploads of this server that you own."


class LengthAlreadySet(BadRequest):
    code = "LENGTH_ALREADY_SET"
    default_hint = "Upload-Length can be declared once; it is fixed now."


class LengthRequired(BadRequest):
    code = "LENGTH_REQUIRED"
    default_hint = "Send Upload-Length, or Upload-Defer-Length: 1 and declare it later."


class PartOutOfRange(BadRequest):
    code = "PART_OUT_OF_RANGE"
    default_hint = "Parts are numbered from 0 to part_count - 1."


class PartSizeMismatch(BadRequest):
    code = "PART_SIZE_MISMATCH"
    default_hint = "Every part but the last is exactly part_size bytes; the last is the rest."


class PartChecksumMismatch(BadRequest):
    code = "PART_CHECKSUM_MISMATCH"
    retryable = True
    default_hint = "The part was corrupted in transit and was not stored; send it again."


class Unauthorized(ChunkdError):
    code = "UNAUTHORIZED"
    status = 401
    default_hint = "Send Authorization: Bearer <token>, or use a signed upload URL."


class Forbidden(ChunkdError):
    code = "FORBIDDEN"
    status = 403


class InsufficientScope(Forbidden):
    code = "INSUFFICIENT_SCOPE"
    default_hint = "The token lacks the scope this route needs."


class QuotaExceeded(Forbidden):
    code = "QUOTA_EXCEEDED"
    default_hint = "Finish or delete some uploads first, or ask for a larger quota."


class FinalUploadImmutable(Forbidden):
    code = "FINAL_UPLOAD_IMMUTABLE"
    default_hint = "A concatenated (final) upload cannot be appended to."


class UploadNotFound(ChunkdError):
    code = "UPLOAD_NOT_FOUND"
    status = 404
    default_hint = "Create a new upload; this id is unknown to the server."


class RequestTooSlow(ChunkdError):
    code = "REQUEST_TOO_SLOW"
    status = 408
    retryable = True
    default_hint = "The body arrived slower than the server's minimum rate; send it again."


class Conflict(ChunkdError):
    code = "CONFLICT"
    status = 409


class OffsetMismatch(Conflict):
    code = "OFFSET_MISMATCH"
    default_hint = "Ask the server for the current offset (HEAD) and resume from there."
    retryable = True


class PartTakenOver(Conflict):
    code = "PART_TAKEN_OVER"
    retryable = True
    default_hint = (
        "Another request for this part took it over (a retry, or a copy the network delivered "
        "late); nothing of this one was stored: send the part again."
    )


class UploadNotReceiving(Conflict):
    code = "UPLOAD_NOT_RECEIVING"
    default_hint = "The upload is finished or being finished; it takes no more bytes."


class UploadIncomplete(Conflict):
    code = "UPLOAD_INCOMPLETE"
    default_hint = "Send the remaining bytes first."


class Gone(ChunkdError):
    code = "GONE"
    status = 410


class MissingParts(Conflict):
    code = "MISSING_PARTS"
    default_hint = "Send the parts listed in details.missing_parts, then complete again."


class PartConflict(Conflict):
    code = "PART_CONFLICT"
    default_hint = "This part was already received with different bytes."


class DigestConflict(Conflict):
    code = "DIGEST_CONFLICT"
    default_hint = (
        "A whole-file digest declared at complete must equal the one declared at creation."
    )


class NotASession(Conflict):
    code = "NOT_A_SESSION"
    default_hint = "This upload was created with tus; continue it with tus PATCH requests."


class UploadExpired(Gone):
    code = "UPLOAD_EXPIRED"
    default_hint = "The upload expired and its bytes were removed; start a new upload."


class UploadAborted(Gone):
    code = "UPLOAD_ABORTED"
    default_hint = "The upload was terminated and its bytes were removed; start a new upload."


class VersionUnsupported(ChunkdError):
    code = "TUS_VERSION_UNSUPPORTED"
    status = 412
    default_hint = "Send Tus-Resumable: 1.0.0."


class TooLarge(ChunkdError):
    code = "TOO_LARGE"
    status = 413


class UploadTooLarge(TooLarge):
    code = "UPLOAD_TOO_LARGE"
    default_hint = "The server's maximum upload size is given by Tus-Max-Size."


class LengthExceeded(TooLarge):
    code = "LENGTH_EXCEEDED"
    default_hint = "Send no more bytes than the declared Upload-Length."


class UnsupportedMediaType(ChunkdError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    status = 415
    default_hint = "PATCH bodies use Content-Type: application/offset+octet-stream."


class Unprocessable(ChunkdError):
    code = "UNPROCESSABLE"
    status = 422


class ValidationFailed(Unprocessable):
    code = "VALIDATION_FAILED"
    default_hint = "Fix the request as details describe."


class DigestMismatch(Unprocessable):
    code = "DIGEST_MISMATCH"
    default_hint = "The file the server received differs from the one declared; upload it again."


class UploadLocked(ChunkdError):
    code = "UPLOAD_LOCKED"
    status = 423
    retryable = True
    default_hint = "Another request holds this upload and did not release it; retry shortly."


class RateLimited(ChunkdError):
    code = "RATE_LIMITED"
    status = 429
    retryable = True
    default_hint = "Too many requests; wait for Retry-After seconds."

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class ChecksumMismatch(ChunkdError):
    code = "CHECKSUM_MISMATCH"
    status = 460
    retryable = True
    default_hint = "The bytes were corrupted in transit and were not stored; send them again."


class ServiceUnavailable(ChunkdError):
    code = "SERVICE_UNAVAILABLE"
    status = 503
    retryable = True
    default_hint = "Retry after a short wait."


class StorageUnavailable(ServiceUnavailable):
    code = "STORAGE_UNAVAILABLE"


def _all_errors(base: type[ChunkdError]) -> list[type[ChunkdError]]:
    found = [base]
    for sub in base.__subclasses__():
        found.extend(_all_errors(sub))
    return found


def error_from_record(record: str, **details: object) -> ChunkdError:
    """Rebuild the error an upload failed with from its stored ``"<CODE>: <message>"``."""
    code, _, message = record.partition(": ")
    kinds = {kind.code: kind for kind in _all_errors(ChunkdError)}
    kind = kinds.get(code, Unprocessable)
    return kind(message or record, details=details or None)


def error_record(error: ChunkdError) -> str:
    return f"{error.code}: {error.message}"
