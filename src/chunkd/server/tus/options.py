"""OPTIONS: what this server speaks (tus core §OPTIONS)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chunkd.protocol.tus import constants
from chunkd.server.tus.context import base_headers, checksum_algorithms, tus, tus_route


@tus_route(versioned=False)
async def options(request: Request) -> Response:
    context = tus(request)
    headers = base_headers()
    headers["Tus-Version"] = constants.TUS_VERSION
    headers["Tus-Extension"] = ",".join(context.extensions)
    headers["Tus-Max-Size"] = str(context.service.config.max_size)
    headers["Tus-Checksum-Algorithm"] = checksum_algorithms()
    return Response(status_code=204, headers=headers)
