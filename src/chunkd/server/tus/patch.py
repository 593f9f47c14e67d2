"""PATCH: append bytes at the acknowledged offset (tus core; checksum; deferred length)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chunkd.exceptions import InvalidHeader, UnsupportedMediaType
from chunkd.protocol.checksums import parse_upload_checksum
from chunkd.protocol.tus.constants import OFFSET_CONTENT_TYPE
from chunkd.protocol.tus.headers import parse_non_negative_int
from chunkd.server.bodies import body_of, content_length
from chunkd.server.tus.context import owner_of, tus, tus_route, upload_headers


def is_offset_stream(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == OFFSET_CONTENT_TYPE


@tus_route()
async def patch(request: Request) -> Response:
    if not is_offset_stream(request):
        raise UnsupportedMediaType(f"Content-Type must be {OFFSET_CONTENT_TYPE}")
    offset = parse_non_negative_int("Upload-Offset", request.headers.get("upload-offset"))
    if offset is None:
        raise InvalidHeader("Upload-Offset is required")
    owner = await owner_of(request)
    upload = await tus(request).service.append(
        request.path_params["upload_id"],
        offset,
        body_of(request),
        owner=owner,
        content_length=content_length(request),
        checksum=parse_upload_checksum(request.headers.get("upload-checksum")),
        declare_length=parse_non_negative_int(
            "Upload-Length", request.headers.get("upload-length")
        ),
    )
    return Response(status_code=204, headers=upload_headers(upload))
