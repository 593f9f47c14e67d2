"""Names and values fixed by the tus 1.0.0 specification."""

from __future__ import annotations

TUS_VERSION = "1.0.0"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"

# Extensions chunkd implements in its protocol layer; the advertised subset also depends on
# what the storage backend can do (see chunkd.server.tus.extensions).
CREATION = "creation"
CREATION_WITH_UPLOAD = "creation-with-upload"
CREATION_DEFER_LENGTH = "creation-defer-length"
EXPIRATION = "expiration"
CHECKSUM = "checksum"
TERMINATION = "termination"
CONCATENATION = "concatenation"

# Headers a browser client must be allowed to send and to read (CORS).
REQUEST_HEADERS = (
    "Authorization",
    "Content-Type",
    "Content-Digest",
    "Location",
    "Tus-Resumable",
    "Upload-Checksum",
    "Upload-Concat",
    "Upload-Defer-Length",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Offset",
    "X-HTTP-Method-Override",
    "X-Request-ID",
    "X-Requested-With",
)
EXPOSED_HEADERS = (
    "Location",
    "Repr-Digest",
    "Tus-Checksum-Algorithm",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Resumable",
    "Tus-Version",
    "Upload-Concat",
    "Upload-Defer-Length",
    "Upload-Expires",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Offset",
    "X-Request-ID",
)
