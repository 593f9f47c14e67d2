"""POST (creation, creation-with-upload, creation-defer-length, concatenation)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chunkd.auth.identity import Identity
from chunkd.exceptions import ChunkdError, InvalidConcatenation, InvalidHeader, LengthRequired
from chunkd.protocol.checksums import parse_upload_checksum
from chunkd.protocol.tus.headers import parse_concat, parse_defer_length, parse_non_negative_int
from chunkd.protocol.tus.metadata import parse_metadata
from chunkd.server.bodies import body_of, content_length, drain
from chunkd.server.tus.context import (
    error_response,
    tus,
    tus_route,
    upload_headers,
)
from chunkd.server.tus.patch import is_offset_stream
from chunkd.uploads.models import Upload


@tus_route()
async def post(request: Request) -> Response:
    context = tus(request)
    service = context.service
    headers = request.headers
    identity = await context.auth.identify(request)
    owner = identity.owner
    metadata = parse_metadata(headers.get("upload-metadata"))
    concat = parse_concat(headers.get("upload-concat"), context.files_path)
    length = parse_non_negative_int("Upload-Length", headers.get("upload-length"))
    defer = parse_defer_length(headers.get("upload-defer-length"))
    if concat is not None and not concat.partial:
        if length is not None or defer:
            raise InvalidConcatenation("a final upload must not carry Upload-Length")
        if identity.max_bytes is not None:
            raise InvalidConcatenation("a signed creation URL cannot join uploads")
        upload = await service.concatenate(concat.parts, metadata=metadata, owner=owner)
        return _created(request, upload, identity)
    if length is not None and defer:
        raise InvalidHeader("send Upload-Length or Upload-Defer-Length, not both")
    if length is None and not defer:
        raise LengthRequired("Upload-Length or Upload-Defer-Length: 1 is required")
    checksum = parse_upload_checksum(headers.get("upload-checksum"))
    declared = content_length(request)
    with_body = is_offset_stream(request) and (
        (declared is None and "transfer-encoding" in headers) or bool(declared)
    )
    await context.auth.admit_creation(identity, length, service.catalog)
    upload = await service.create(
        length=length,
        metadata=metadata,
        owner=owner,
        partial=concat is not None and concat.partial,
    )
    if with_body:
        location = {"Location": _location(request, upload, identity)}
        try:
            upload = await service.append(
                upload.id,
                0,
                body_of(request),
                owner=owner,
                content_length=declared,
                checksum=checksum,
            )
        except ChunkdError as error:  # the upload exists: tell the client where it is
            await drain(request)
            return error_response(error, location)
    return _created(request, upload, identity)


def _location(request: Request, upload: Upload, identity: Identity) -> str:
    context = tus(request)
    return context.auth.location(identity, context.upload_url(request, upload.id), upload.id)


def _created(request: Request, upload: Upload, identity: Identity) -> Response:
    headers = upload_headers(upload)
    headers["Location"] = _location(request, upload, identity)
    return Response(status_code=201, headers=headers)
