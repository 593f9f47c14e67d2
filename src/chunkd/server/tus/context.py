"""What every tus handler needs: the service, the advertised abilities, URL building."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import wraps

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from chunkd.exceptions import ChunkdError, VersionUnsupported
from chunkd.protocol.checksums import ALGORITHMS
from chunkd.protocol.tus import constants
from chunkd.protocol.tus.headers import format_expires, require_tus_resumable
from chunkd.server.urls import public_origin
from chunkd.storage.base import Storage, SupportsConcatenation
from chunkd.uploads.models import Upload, UploadState
from chunkd.uploads.service import BodyInterrupted, UploadService


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

    @property
    def extensions(self) -> tuple[str, ...]:
        return derive_extensions(self.service.storage)

    def upload_url(self, request: Request, upload_id: str) -> str:
        origin = public_origin(
            request.url.scheme,
            request.headers,
            request.scope.get("server"),
            behind_proxy=self.behind_proxy,
        )
        return f"{origin}{self.files_path}{upload_id}"


def tus(request: Request) -> TusContext:
    context: TusContext = request.app.state.tus
    return context


def base_headers() -> dict[str, str]:
    return {"Tus-Resumable": constants.TUS_VERSION, "Cache-Control": "no-store"}


def upload_headers(upload: Upload) -> dict[str, str]:
    """Headers describing an upload's progress, shared by POST, HEAD and PATCH answers."""
    headers = base_headers()
    headers["Upload-Offset"] = str(upload.offset)
    if upload.expires_at is not None and upload.state is UploadState.RECEIVING:
        headers["Upload-Expires"] = format_expires(upload.expires_at)
    return headers


def error_response(error: ChunkdError, extra: dict[str, str] | None = None) -> Response:
    headers = base_headers()
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
                return error_response(error)

        return endpoint

    return decorate


async def body_of(request: Request) -> AsyncIterator[bytes]:
    """The request body as the service wants it: chunks, and ``BodyInterrupted`` on a cut."""
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise BodyInterrupted from None


def checksum_algorithms() -> str:
    return ",".join(sorted(ALGORITHMS))
