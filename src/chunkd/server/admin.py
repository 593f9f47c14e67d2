"""The admin API at ``<base>/admin``: every route needs the ``admin`` scope.

List uploads (filters and paging), one upload in full, cancel any upload, storage use, an
activity summary and an expiry sweep on demand. ``chunkd admin`` is its command-line client.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from chunkd.auth.identity import ADMIN
from chunkd.catalog.base import Activity
from chunkd.exceptions import UploadNotFound
from chunkd.protocol.tus.headers import is_valid_upload_id
from chunkd.server.auth import Authenticator
from chunkd.server.rest.errors import ERROR_RESPONSES
from chunkd.server.rest.models import HandoffStatus, UploadStatus, timestamp, when
from chunkd.server.rest.routes import RestApi
from chunkd.storage.local import LocalStorage
from chunkd.uploads.expiry import sweep_all
from chunkd.uploads.models import Upload, UploadState
from chunkd.uploads.service import UploadService

HOUR = 3600.0
DAY = 24 * HOUR


class AdminUploadSummary(BaseModel):
    id: str
    owner: str | None = Field(description="None for uploads made without authentication.")
    state: str
    protocol: str = Field(description="rest or tus")
    filename: str | None
    size: int | None = Field(description="Declared length; None while a tus client defers it.")
    offset: int = Field(description="Contiguous bytes received from the start of the file.")
    error: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None


class AdminUploadPage(BaseModel):
    uploads: list[AdminUploadSummary]
    next: str | None = Field(description="Pass as ?after= for the next page; None at the end.")


class AdminUpload(UploadStatus):
    """Everything about one upload: its status as its owner sees it, and what only an
    operator sees."""

    owner: str | None
    partial: bool = Field(description="Made only to be joined into a final tus upload.")
    concat_parts: list[str] | None = Field(description="The partial uploads a final one joined.")
    storage_keys: list[str] = Field(description="Names in the storage handle (values hidden).")


class Amount(BaseModel):
    uploads: int
    bytes: int = Field(description="Declared lengths (offsets while a length is deferred).")


class OwnerUsage(Amount):
    owner: str | None
    by_state: dict[str, Amount]


class Disk(BaseModel):
    path: str
    total: int
    used: int
    free: int


class StorageReport(BaseModel):
    total: Amount
    by_state: dict[str, Amount]
    by_owner: list[OwnerUsage]
    disk: Disk | None = Field(description="The data directory's file system (local storage).")


class ActivityWindow(BaseModel):
    since: datetime
    seconds: float
    started: int = Field(description="Uploads created in the window.")
    completed: int = Field(description="Uploads completed in the window.")
    failed: int = Field(description="Uploads that failed (verification) in the window.")
    aborted: int
    expired: int
    bytes: int = Field(description="Bytes of the uploads completed in the window.")
    mean_rate: float | None = Field(
        description="Bytes per second of the completed uploads, creation to completion."
    )
    throughput: float = Field(description="Completed bytes per second of the window.")


class ActivityReport(BaseModel):
    last_hour: ActivityWindow
    last_day: ActivityWindow


class CleanupReport(BaseModel):
    expired: int = Field(description="Idle uploads expired now (bytes removed).")
    purged: int = Field(description="Old tombstone records removed.")
    bytes_reclaimed: int


def _service(request: Request) -> UploadService:
    service: UploadService = request.app.state.service
    return service


async def require_admin(request: Request) -> None:
    auth: Authenticator = request.app.state.auth
    await auth.identify(request, scope=ADMIN)


def _protocol(upload: Upload) -> str:
    return "rest" if upload.is_session else "tus"


def _summary(upload: Upload) -> AdminUploadSummary:
    return AdminUploadSummary(
        id=upload.id,
        owner=upload.owner,
        state=str(upload.state),
        protocol=_protocol(upload),
        filename=upload.metadata.get("filename"),
        size=upload.length,
        offset=upload.offset,
        error=upload.error,
        created_at=when(upload.created_at),
        updated_at=when(upload.updated_at),
        expires_at=timestamp(upload.expires_at),
    )


def _window(activity: Activity, now: float, seconds: float) -> ActivityWindow:
    busy = activity.completed_seconds
    return ActivityWindow(
        since=when(now - seconds),
        seconds=seconds,
        started=activity.started,
        completed=activity.completed,
        failed=activity.failed,
        aborted=activity.aborted,
        expired=activity.expired,
        bytes=activity.completed_bytes,
        mean_rate=activity.completed_bytes / busy if busy > 0 else None,
        throughput=activity.completed_bytes / seconds,
    )


def build_admin_router(api: RestApi, base_path: str) -> APIRouter:
    router = APIRouter(
        prefix=f"{base_path}/admin",
        tags=["admin"],
        responses=ERROR_RESPONSES,
        dependencies=[Depends(require_admin)],
    )

    async def full(request: Request, upload: Upload) -> AdminUpload:
        status = await api.status(request, upload)
        handoff = await _service(request).catalog.get_handoff(upload.id)
        return AdminUpload(
            **status.model_dump(exclude={"handoff"}),
            handoff=HandoffStatus.of(handoff),
            owner=upload.owner,
            partial=upload.partial,
            concat_parts=None if upload.concat_parts is None else list(upload.concat_parts),
            storage_keys=sorted(upload.storage),
        )

    async def record(request: Request, upload_id: str) -> Upload:
        upload = None
        if is_valid_upload_id(upload_id):
            upload = await _service(request).catalog.get(upload_id)
        if upload is None:
            raise UploadNotFound(f"upload {upload_id!r} does not exist")
        return upload

    @router.get(
        "/uploads",
        response_model=AdminUploadPage,
        summary="List uploads (any owner), by id, with filters and paging",
    )
    async def list_uploads(
        request: Request,
        state: Annotated[
            list[UploadState] | None, Query(description="Any of these states (repeat).")
        ] = None,
        owner: Annotated[str | None, Query(max_length=1024)] = None,
        older_than: Annotated[
            float | None, Query(gt=0, description="Not updated for at least this many seconds.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after: Annotated[
            str | None, Query(max_length=128, description="The previous page's next.")
        ] = None,
    ) -> AdminUploadPage:
        service = _service(request)
        found = await service.catalog.list_uploads(
            owner=owner,
            states=frozenset(state) if state else None,
            updated_before=None if older_than is None else service.clock() - older_than,
            after=after,
            limit=limit + 1,
        )
        page = found[:limit]
        more = len(found) > limit
        return AdminUploadPage(
            uploads=[_summary(upload) for upload in page], next=page[-1].id if more else None
        )

    @router.get("/uploads/{upload_id}", response_model=AdminUpload, summary="One upload in full")
    async def show_upload(request: Request, upload_id: str) -> AdminUpload:
        return await full(request, await record(request, upload_id))

    @router.post(
        "/uploads/{upload_id}/cancel",
        response_model=AdminUpload,
        summary="Abort an upload of any owner and remove its bytes",
    )
    async def cancel_upload(request: Request, upload_id: str) -> AdminUpload:
        await _service(request).terminate(upload_id)  # 404 unknown, 410 already gone
        return await full(request, await record(request, upload_id))

    @router.get(
        "/storage", response_model=StorageReport, summary="Bytes and uploads by state and owner"
    )
    async def storage(request: Request) -> StorageReport:
        service = _service(request)
        by_state: dict[str, Amount] = {}
        owners: dict[str | None, OwnerUsage] = {}
        total = Amount(uploads=0, bytes=0)
        for row in await service.catalog.totals():
            state = str(row.state)
            seen = by_state.get(state, Amount(uploads=0, bytes=0))
            by_state[state] = Amount(
                uploads=seen.uploads + row.uploads, bytes=seen.bytes + row.bytes
            )
            usage = owners.setdefault(
                row.owner, OwnerUsage(owner=row.owner, uploads=0, bytes=0, by_state={})
            )
            usage.uploads += row.uploads
            usage.bytes += row.bytes
            usage.by_state[state] = Amount(uploads=row.uploads, bytes=row.bytes)
            total.uploads += row.uploads
            total.bytes += row.bytes
        disk = None
        if isinstance(service.storage, LocalStorage):
            root = service.storage.root
            usage_ = shutil.disk_usage(root)
            disk = Disk(path=str(root), total=usage_.total, used=usage_.used, free=usage_.free)
        return StorageReport(
            total=total,
            by_state=by_state,
            by_owner=sorted(owners.values(), key=lambda o: (-o.bytes, o.owner or "")),
            disk=disk,
        )

    @router.get(
        "/activity",
        response_model=ActivityReport,
        summary="Uploads started, completed and failed, bytes and rates: last hour and day",
    )
    async def activity(request: Request) -> ActivityReport:
        service = _service(request)
        now = service.clock()
        hour = await service.catalog.activity(now - HOUR)
        day = await service.catalog.activity(now - DAY)
        return ActivityReport(last_hour=_window(hour, now, HOUR), last_day=_window(day, now, DAY))

    @router.post("/cleanup", response_model=CleanupReport, summary="Run the expiry sweep now")
    async def cleanup(request: Request) -> CleanupReport:
        service = _service(request)
        report = await sweep_all(service)
        service.swept_bytes += report.bytes_reclaimed
        return CleanupReport(
            expired=report.expired, purged=report.purged, bytes_reclaimed=report.bytes_reclaimed
        )

    return router
