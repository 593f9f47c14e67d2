"""GET: download a finished upload, whole or one byte range (not part of tus; tusd does it)."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from chunkd.exceptions import UploadIncomplete
from chunkd.protocol.ranges import RangeNotSatisfiable, parse_range
from chunkd.server.tus.context import base_headers, owner_of, tus, tus_route
from chunkd.uploads.models import UploadState


@tus_route(versioned=False)
async def get(request: Request) -> Response:
    service = tus(request).service
    upload = await service.get(request.path_params["upload_id"], owner=await owner_of(request))
    if upload.state is not UploadState.COMPLETE or upload.length is None:
        raise UploadIncomplete("the upload is not finished yet")
    length = upload.length
    headers = base_headers()
    headers["Accept-Ranges"] = "bytes"
    headers["X-Content-Type-Options"] = "nosniff"
    # Never the client's declared type: serving it inline would let an upload run as a page.
    filename = upload.metadata.get("filename") or upload.id
    headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename, safe='')}"
    if "sha256" in upload.digests:
        headers["ETag"] = f'"{upload.digests["sha256"]}"'
    try:
        wanted = parse_range(request.headers.get("range"), length)
    except RangeNotSatisfiable:
        headers["Content-Range"] = f"bytes */{length}"
        return Response(status_code=416, headers=headers)
    start, stop, status = 0, length, 200
    if wanted is not None:
        start, stop, status = wanted.start, wanted.stop, 206
        headers["Content-Range"] = wanted.content_range(length)
    headers["Content-Length"] = str(stop - start)
    return StreamingResponse(
        service.read(upload, start, stop),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )
