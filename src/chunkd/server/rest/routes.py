"""The REST session API: create, put parts, status, complete, abort — at ``<base>/uploads``."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response

from chunkd.auth.identity import Identity
from chunkd.exceptions import (
    BadRequest,
    DigestMismatch,
    LengthRequired,
    TooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from chunkd.hooks.base import POST_FINISH
from chunkd.protocol.digests import DECLARABLE, normalize_digest, part_checksums
from chunkd.protocol.parts import part_count
from chunkd.server.auth import Authenticator
from chunkd.server.bodies import body_of, content_length
from chunkd.server.rest.errors import ERROR_RESPONSES
from chunkd.server.rest.models import (
    CompleteSession,
    CreateSession,
    HandoffStatus,
    PartStored,
    SessionCreated,
    SessionUrls,
    UploadStatus,
    timestamp,
    when,
)
from chunkd.server.urls import absolute_url
from chunkd.uploads.models import Upload, UploadState
from chunkd.uploads.service import UploadService

_JSON_LIMIT = 64 * 1024
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_CREATE_SESSION_SCHEMA = CreateSession.model_json_schema(
    ref_template="#/components/schemas/{model}"
)
_COMPLETE_SESSION_SCHEMA = CompleteSession.model_json_schema(
    ref_template="#/components/schemas/{model}"
)
M = TypeVar("M", bound=BaseModel)


def _service(request: HTTPConnection) -> UploadService:
    service: UploadService = request.app.state.service
    return service


def _auth(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


async def _owner(request: Request, upload_id: str) -> str | None:
    return (await _auth(request).identify(request, upload_id=upload_id)).owner


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


class RestApi:
    def __init__(self, base_path: str, files_path: str, behind_proxy: bool) -> None:
        self.prefix = f"{base_path}/uploads"
        self.files_path = files_path
        self.behind_proxy = behind_proxy

    def url(self, request: HTTPConnection, path: str) -> str:
        return absolute_url(request, path, self.behind_proxy)

    async def status(self, request: HTTPConnection, upload: Upload) -> UploadStatus:
        service = _service(request)
        parts, missing = await service.sessions.received(upload)
        handoff = (  # shown when this server hands uploads to a pipeline (else it waits)
            await service.catalog.get_handoff(upload.id)
            if upload.state is UploadState.COMPLETE and service.hooks.wants(POST_FINISH)
            else None
        )
        session = upload.is_session and upload.part_size is not None
        complete = upload.state is UploadState.COMPLETE
        return UploadStatus(
            id=upload.id,
            protocol="rest" if session else "tus",
            state=str(upload.state),
            filename=upload.metadata.get("filename"),
            content_type=upload.metadata.get("content_type") or upload.metadata.get("filetype"),
            sniffed_type=upload.sniffed_type,
            size=upload.length,
            part_size=upload.part_size,
            part_count=(
                part_count(upload.length, upload.part_size)
                if upload.part_size and upload.length is not None
                else None
            ),
            bytes_received=sum(part.size for part in parts) if session else upload.offset,
            offset=upload.offset,
            parts_received=len(parts) if session else None,
            missing_parts=(missing if not complete else []) if session else None,
            metadata=upload.metadata,
            digests=upload.digests,
            expected_digests=upload.expected_digests,
            error=upload.error,
            created_at=when(upload.created_at),
            updated_at=when(upload.updated_at),
            expires_at=timestamp(upload.expires_at),
            location=self.url(request, f"{self.files_path}{upload.id}") if complete else None,
            handoff=HandoffStatus.of(handoff),
        )

    def created(self, request: Request, upload: Upload, identity: Identity) -> SessionCreated:
        assert upload.part_size is not None and upload.length is not None
        base = f"{self.prefix}/{upload.id}"

        def url(path: str, suffix: str = "") -> str:
            # for a client without a token, every URL carries a signature for this upload
            location = _auth(request).location(identity, self.url(request, path), upload.id)
            return location.replace("?", f"{suffix}?", 1) if "?" in location else location + suffix

        return SessionCreated(
            id=upload.id,
            part_size=upload.part_size,
            part_count=part_count(upload.length, upload.part_size),
            expires_at=timestamp(upload.expires_at),
            urls=SessionUrls(
                self=url(base),
                parts=url(f"{base}/parts/", "{n}"),
                complete=url(f"{base}/complete"),
                download=url(f"{self.files_path}{upload.id}"),
            ),
        )


def build_router(api: RestApi) -> APIRouter:
    router = APIRouter(prefix=api.prefix, tags=["uploads"], responses=ERROR_RESPONSES)

    @router.post(
        "",
        status_code=201,
        response_model=SessionCreated | UploadStatus,
        summary="Create an upload session (JSON), or store a whole small file at once",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    # inline: no route takes CreateSession as a parameter, so FastAPI never
                    # adds it to components and a $ref to it would dangle
                    "application/json": {"schema": _CREATE_SESSION_SCHEMA},
                    "application/octet-stream": _BINARY,
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"file": {"type": "string", "format": "binary"}},
                            "required": ["file"],
                        }
                    },
                },
            }
        },
    )
    async def create_upload(
        request: Request,
        complete: bool = Query(False, description="Store the body as the whole file now."),
        filename: str | None = Query(None, max_length=1024, pattern=r"^[^\x00-\x1f]*$"),
        sha256: str | None = Query(None),
        crc32c: str | None = Query(None),
        md5: str | None = Query(None),
    ) -> Response:
        service = _service(request)
        identity = await _auth(request).identify(request)
        owner = identity.owner
        media_type = _media_type(request)
        if media_type == "application/json" or (not complete and media_type == ""):
            spec = await _create_spec(request)
            await _auth(request).admit_creation(identity, spec.size, service.catalog)
            metadata: dict[str, str | None] = {
                **spec.metadata,
                "filename": spec.filename,
                "content_type": spec.content_type,
            }
            upload = await service.sessions.create(
                size=spec.size,
                metadata=metadata,
                owner=owner,
                part_size=spec.part_size,
                expected_digests=spec.declared(),
            )
            created = api.created(request, upload, identity)
            return JSONResponse(created.model_dump(mode="json", by_alias=True), 201)
        if not complete:
            raise UnsupportedMediaType(
                "POST /uploads takes a JSON session request",
                hint="Send application/json, or add ?complete=true to store this body whole.",
            )
        declared = _declared_digests({"sha256": sha256, "crc32c": crc32c, "md5": md5})
        if media_type == "multipart/form-data":
            upload = await _store_form(request, service, declared, identity)
        else:
            size = content_length(request)
            if size is None:
                raise LengthRequired("a whole-file upload needs a Content-Length")
            await _auth(request).admit_creation(identity, size, service.catalog)
            upload = await service.create(
                length=size,
                metadata={"filename": filename, "content_type": media_type or None},
                owner=owner,
                expected_digests=declared,
            )
            if upload.state is UploadState.RECEIVING:  # an empty file is finished on creation
                upload = await service.append(
                    upload.id, 0, body_of(request), owner=owner, content_length=size
                )
        return await _finished(request, api, upload)

    @router.put(
        "/{upload_id}/parts/{n}",
        response_model=PartStored,
        summary="Store part n (zero-based); parts may come in any order and in parallel",
        responses={201: {"model": PartStored, "description": "Stored"}},
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/octet-stream": _BINARY}}
        },
    )
    async def put_part(request: Request, upload_id: str, n: int) -> Response:
        owner = await _owner(request, upload_id)
        part, new = await _service(request).sessions.put_part(
            upload_id,
            n,
            body_of(request),
            owner=owner,
            content_length=content_length(request),
            checksums=part_checksums(request.headers),
        )
        stored = PartStored(index=part.index, size=part.size, digest=part.digest, new=new)
        return JSONResponse(stored.model_dump(), status_code=201 if new else 200)

    @router.get("/{upload_id}", response_model=UploadStatus, summary="State of an upload")
    async def get_status(request: Request, upload_id: str) -> UploadStatus:
        upload = await _service(request).get(upload_id, owner=await _owner(request, upload_id))
        return await api.status(request, upload)

    @router.post(
        "/{upload_id}/complete",
        response_model=UploadStatus,
        summary="Check every part is there, verify the whole file, and finish",
        openapi_extra={
            "requestBody": {
                "required": False,
                "description": "Optional whole-file digests, if not declared at creation.",
                "content": {"application/json": {"schema": _COMPLETE_SESSION_SCHEMA}},
            }
        },
    )
    async def complete_upload(request: Request, upload_id: str) -> UploadStatus:
        owner = await _owner(request, upload_id)
        spec = await _json_body(request, CompleteSession, "complete request", empty=True)
        declared = spec.declared() if spec is not None else {}
        upload = await _service(request).sessions.complete(
            upload_id, owner=owner, declared=declared
        )
        return await api.status(request, upload)

    @router.delete(
        "/{upload_id}", status_code=204, response_class=Response, summary="Abort an upload"
    )
    async def abort_upload(request: Request, upload_id: str) -> Response:
        await _service(request).terminate(upload_id, owner=await _owner(request, upload_id))
        return Response(status_code=204)

    return router


async def _create_spec(request: Request) -> CreateSession:
    spec = await _json_body(request, CreateSession, "session request")
    assert spec is not None
    return spec


async def _json_body(
    request: Request, model: type[M], what: str, *, empty: bool = False
) -> M | None:
    """The request's JSON body as ``model`` (``None`` for no body at all, when ``empty``)."""
    declared = content_length(request)
    if declared is not None and declared > _JSON_LIMIT:
        raise TooLarge(f"the {what} is larger than 64 KiB")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _JSON_LIMIT:
            raise TooLarge(f"the {what} is larger than 64 KiB")
    if empty and not body.strip():
        return None
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        if any(problem["type"] == "json_invalid" for problem in error.errors()):
            raise BadRequest("the body is not valid JSON") from None
        problems = [
            {"loc": [str(part) for part in problem["loc"]], "msg": problem["msg"]}
            for problem in error.errors()
        ]
        raise ValidationFailed(f"the {what} is not valid", details={"problems": problems}) from None


def _declared_digests(values: dict[str, str | None]) -> dict[str, str]:
    declared = {}
    for name in DECLARABLE:
        value = values.get(name)
        if value:
            try:
                declared[name] = normalize_digest(name, value)
            except ValueError as error:
                raise ValidationFailed(str(error), details={"field": name}) from None
    return declared


async def _store_form(
    request: Request, service: UploadService, declared: dict[str, str], identity: Identity
) -> Upload:
    async with request.form(max_files=1, max_fields=16) as form:
        file = form.get("file")
        if not isinstance(file, UploadFile) or file.size is None:
            raise BadRequest("the form needs one file field named 'file'")
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
        declared = {**_declared_digests(dict(fields)), **declared}
        await _auth(request).admit_creation(identity, file.size, service.catalog)
        upload = await service.create(
            length=file.size,
            metadata={"filename": file.filename, "content_type": file.content_type},
            owner=identity.owner,
            expected_digests=declared,
        )

        async def chunks() -> Any:
            while chunk := await file.read(256 * 1024):
                yield chunk

        if upload.state is not UploadState.RECEIVING:  # an empty file is finished on creation
            return upload
        return await service.append(
            upload.id, 0, chunks(), owner=identity.owner, content_length=file.size
        )


async def _finished(request: Request, api: RestApi, upload: Upload) -> Response:
    if upload.state is UploadState.FAILED:
        raise DigestMismatch(
            upload.error or "the file does not match its declared digest",
            details={"expected": upload.expected_digests, "actual": upload.digests},
        )
    status = await api.status(request, upload)
    return JSONResponse(status.model_dump(mode="json"), status_code=201)
