"""The tus collection's routes, under ``<base_path>/files/``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from chunkd.exceptions import UploadNotFound
from chunkd.server.tus.context import error_response
from chunkd.server.tus.delete import delete
from chunkd.server.tus.get import get
from chunkd.server.tus.head import head
from chunkd.server.tus.options import options
from chunkd.server.tus.patch import patch
from chunkd.server.tus.post import post


async def not_an_upload(request: Request) -> Response:
    return error_response(UploadNotFound("no such upload"))


def tus_routes(files_path: str) -> list[BaseRoute]:
    collection = files_path.rstrip("/")
    return [
        Route(collection, post, methods=["POST"], include_in_schema=False),
        Route(files_path, post, methods=["POST"], include_in_schema=False),
        Route(collection, options, methods=["OPTIONS"], include_in_schema=False),
        Route(files_path, options, methods=["OPTIONS"], include_in_schema=False),
        Route(f"{files_path}{{upload_id}}", head, methods=["HEAD"], include_in_schema=False),
        Route(f"{files_path}{{upload_id}}", patch, methods=["PATCH"], include_in_schema=False),
        Route(f"{files_path}{{upload_id}}", delete, methods=["DELETE"], include_in_schema=False),
        Route(f"{files_path}{{upload_id}}", get, methods=["GET"], include_in_schema=False),
        Route(f"{files_path}{{upload_id}}", options, methods=["OPTIONS"], include_in_schema=False),
        # Anything deeper (``/files/a/../b``) names no upload; answer like tus, not like a page.
        Route(
            f"{files_path}{{rest:path}}",
            not_an_upload,
            methods=["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"],
            include_in_schema=False,
        ),
    ]
