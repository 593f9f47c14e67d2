"""What every tus handler needs: the service, the advertised abilities, URL building."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps

from starlette.requests import Request
from starlette.responses import Response

from chunkd.exceptions import (
    ChunkdError,
    RateLimited,
    StorageUnavailable,
    Unauthorized,
    VersionUnsupported,
)
from chunkd.protocol.checksums import ALGORITHMS
from chunkd.protocol.tus import constants
from chunkd.protocol.tus.headers import format_expires, require_tus_resumable
from chunkd.server.auth import Authenticator
from chunkd.server.bodies import drain
from chunkd.server.urls import absolute_url
from chunkd.storage.base import Storage, SupportsConcatenation
from chunkd.uploads.models import Upload, UploadState
from chunkd.uploads.service import UploadService

log = logging.getLogger("chunkd.server")


def derive_extensions(storage: Storage) -> tuple[str, ...]:
    """The tus extensions this server can honour with ``storage`` (tusd's ``UseIn`` idea)."""
    extensions = [
        constants.CREATION,
        constants.CREATION_WITH_UPLOAD,
        constants.CREATION_DEFER_LENGTH,
        constants.EXPIRATION,
        constants.CHECKSUM,
        constants.TERMINATION,
    ]
    if isinstance(storage, SupportsConcatenation):
        extensions.append(constants.CONCATENATION)
    return tuple(extensions)


@dataclass(frozen=True)
class TusContext:
    service: UploadService
    files_path: str
    behind_proxy: bool
    auth: Authenticator

    @property
    def extensions(self) -> tuple[str, ...]:
        return derive_extensions(self.service.storage)

    def upload_url(self, request: Request, upload_id: str) -> str:
        return absolute_url(request, f"{self.files_path}{upload_id}", self.behind_proxy)


def tus(request: Request) -> TusContext:
    context: TusContext = request.app.state.tus
    return context


async def owner_of(request: Request) -> str | None:
    """Authenticate a request on one upload (named in the path); returns the owner to check."""
    context = tus(request)
    identity = await context.auth.identify(request, upload_id=request.path_params["upload_id"])
    return identity.owner


def base_headers() -> dict[str, str]:
    return {"Tus-Resumable": constants.TUS_VERSION, "Cache-Control": "no-store"}


def upload_headers(upload: Upload) -> dict[str, str]:
    """Headers describing an upload's progress, shared by POST, HEAD and PATCH answers."""
    headers = base_headers()
    headers["Upload-Offset"] = str(upload.offset)
    if upload.expires_at is not None and upload.state is UploadState.RECEIVING:
        headers["Upload-Expires"] = format_expires(upload.expires_at)
    return headers


def error_headers(error: ChunkdError) -> dict[str, str]:
    """Headers an error answer needs on any route: how to authenticate, when to retry."""
    headers = {}
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="chunkd"'
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after)
    elif error.retryable and error.status == 503:
        headers["Retry-After"] = "5"
    return headers


def error_response(error: ChunkdError, extra: dict[str, str] | None = None) -> Response:
    headers = base_headers()
    headers.update(error_headers(error))
    if isinstance(error, VersionUnsupported):
        headers["Tus-Version"] = constants.TUS_VERSION
    headers.update(extra or {})
    return Response(
        f"{error.code}: {error.message}\n",
        status_code=error.status,
        headers=headers,
        media_type="text/plain",
    )


Handler = Callable[[Request], Awaitable[Response]]


def tus_route(*, versioned: bool = True) -> Callable[[Handler], Handler]:
    """Wrap a handler: check ``Tus-Resumable`` and answer ``ChunkdError`` the tus way."""

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def endpoint(request: Request) -> Response:
            try:
                if versioned:
                    require_tus_resumable(request.headers.get("tus-resumable"))
                return await handler(request)
            except ChunkdError as error:
                await drain(request)
                return error_response(error)
            except OSError:
                log.exception("storage failure")
                return error_response(StorageUnavailable("the server could not reach storage"))

        return endpoint

    return decorate


def checksum_algorithms() -> str:
    return ",".join(sorted(ALGORITHMS))
