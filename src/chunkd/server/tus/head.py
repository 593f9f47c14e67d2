"""HEAD: the offset to resume from, and everything else known about the upload."""

from __future__ import annotations

import base64

from starlette.requests import Request
from starlette.responses import Response

from chunkd.protocol.tus.metadata import format_metadata
from chunkd.server.tus.context import owner_of, tus, tus_route, upload_headers
from chunkd.uploads.models import Upload, UploadState


def describe(request: Request, upload: Upload) -> dict[str, str]:
    context = tus(request)
    headers = upload_headers(upload)
    if upload.length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(upload.length)
    if upload.metadata:
        headers["Upload-Metadata"] = format_metadata(upload.metadata)
    if upload.partial:
        headers["Upload-Concat"] = "partial"
    elif upload.concat_parts is not None:
        urls = " ".join(context.upload_url(request, part) for part in upload.concat_parts)
        headers["Upload-Concat"] = f"final;{urls}"
    if upload.state is UploadState.COMPLETE and "sha256" in upload.digests:
        digest = base64.b64encode(bytes.fromhex(upload.digests["sha256"])).decode()
        headers["Repr-Digest"] = f"sha-256=:{digest}:"
    return headers


@tus_route()
async def head(request: Request) -> Response:
    owner = await owner_of(request)
    upload = await tus(request).service.get(request.path_params["upload_id"], owner=owner)
    return Response(status_code=200, headers=describe(request, upload))
