"""DELETE (termination extension): abort the upload and free its bytes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chunkd.server.tus.context import base_headers, owner_of, tus, tus_route


@tus_route()
async def delete(request: Request) -> Response:
    owner = await owner_of(request)
    await tus(request).service.terminate(request.path_params["upload_id"], owner=owner)
    return Response(status_code=204, headers=base_headers())
