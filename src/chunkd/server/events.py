"""Live upload events over Server-Sent Events and WebSocket.

Every stream subscribes first and then sends the upload's current state, so nothing that
happens in between is missed; then events follow as they happen (progress at most ten times a
second), with a keep-alive comment every 15 s. A per-upload stream ends after the upload's
final event (completed, failed, aborted, expired).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from starlette.responses import StreamingResponse

from chunkd.exceptions import ChunkdError
from chunkd.hooks.base import POST_FINISH
from chunkd.server.auth import Authenticator
from chunkd.server.rest.errors import ERROR_RESPONSES
from chunkd.server.rest.routes import RestApi
from chunkd.uploads.events import COMPLETED, FINAL, HANDOFF, STATE, Event, Subscription
from chunkd.uploads.service import UploadService

KEEPALIVE = 15.0


def _sse(kind: str, data: dict[str, Any] | str) -> str:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"event: {kind}\ndata: {text}\n\n"


def _settled(first: dict[str, Any], handoffs: bool) -> bool:
    """Whether an upload's state (a status snapshot) will not change any more."""
    state = first.get("state")
    if state in ("failed", "aborted", "expired"):
        return True
    if state != "complete":
        return False
    handoff = first.get("handoff")
    return not handoffs or handoff is None or handoff.get("state") != "pending"


def _last(event: Event, handoffs: bool) -> bool:
    """Whether ``event`` is the last one of its upload's stream. With a processing pipeline,
    ``completed`` is followed by the hand-off's outcome, and the stream waits for it."""
    if event.type == HANDOFF:
        return event.data.get("state") in ("delivered", "failed")
    return event.type in FINAL and not (handoffs and event.type == COMPLETED)


async def _follow(
    subscription: Subscription, first: dict[str, Any], *, until_final: bool, handoffs: bool
) -> AsyncIterator[Event | None]:
    """The events of a subscription; ``None`` when it is time for a keep-alive."""
    if until_final and _settled(first, handoffs):
        return
    while True:
        event = await subscription.get(KEEPALIVE)
        if subscription.closed and event is None:
            return  # the server is stopping
        yield event
        if event is not None and until_final and _last(event, handoffs):
            return


def handoffs(service: UploadService) -> bool:
    """Whether completed uploads are handed to a processing pipeline by this server."""
    return service.hooks.wants(POST_FINISH)


def build_events_router(api: RestApi, base_path: str) -> APIRouter:
    router = APIRouter(prefix=base_path, tags=["events"], responses=ERROR_RESPONSES)

    def parts(request: Request | WebSocket) -> tuple[Authenticator, UploadService]:
        return request.app.state.auth, request.app.state.service

    async def snapshot(
        request: Request | WebSocket, upload_id: str, owner: str | None
    ) -> dict[str, Any]:
        _, service = parts(request)
        upload = await service.get(upload_id, owner=owner)
        status = await api.status(request, upload)
        return {"type": STATE, "upload_id": upload.id, **status.model_dump(mode="json")}

    # Streams are left out of the OpenAPI document: a schema cannot describe an endless
    # body, and schema-driven testers would wait on it forever; the README documents them.
    @router.get("/uploads/{upload_id}/events", include_in_schema=False)
    async def upload_events(request: Request, upload_id: str) -> StreamingResponse:
        auth, service = parts(request)
        owner = (await auth.identify(request, upload_id=upload_id)).owner
        await service.get(upload_id, owner=owner)  # 404 before the stream starts

        async def stream() -> AsyncIterator[str]:
            with service.events.subscribe(upload_id=upload_id) as subscription:
                first = await snapshot(request, upload_id, owner)
                yield _sse(STATE, first)
                async for event in _follow(
                    subscription, first, until_final=True, handoffs=handoffs(service)
                ):
                    yield ": keep-alive\n\n" if event is None else _sse(event.type, event.json)

        return StreamingResponse(stream(), media_type="text/event-stream", headers=_NO_CACHE)

    @router.get("/events", include_in_schema=False)
    async def owner_events(request: Request) -> StreamingResponse:
        auth, service = parts(request)
        owner = (await auth.identify(request)).owner

        async def stream() -> AsyncIterator[str]:
            with service.events.subscribe(owner=owner) as subscription:
                yield _sse(STATE, {"type": STATE, "owner": owner})
                async for event in _follow(subscription, {}, until_final=False, handoffs=False):
                    yield ": keep-alive\n\n" if event is None else _sse(event.type, event.json)

        return StreamingResponse(stream(), media_type="text/event-stream", headers=_NO_CACHE)

    @router.websocket("/uploads/{upload_id}/ws")
    async def upload_socket(websocket: WebSocket, upload_id: str) -> None:
        auth, service = parts(websocket)
        try:
            owner = (await auth.identify(websocket, upload_id=upload_id)).owner
            await service.get(upload_id, owner=owner)
        except ChunkdError as error:
            await websocket.close(code=4000 + error.status, reason=error.code)
            return
        await websocket.accept()
        with service.events.subscribe(upload_id=upload_id) as subscription:
            first = await snapshot(websocket, upload_id, owner)
            await websocket.send_json(first)
            try:
                async for event in _follow(
                    subscription, first, until_final=True, handoffs=handoffs(service)
                ):
                    await websocket.send_json(
                        {"type": "keep-alive"} if event is None else event.to_dict()
                    )
            except WebSocketDisconnect:
                return
        await websocket.close()

    return router


_NO_CACHE = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
