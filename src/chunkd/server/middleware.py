"""Pure ASGI middleware (no body buffering): method override and request ids."""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_OVERRIDABLE = frozenset({"PATCH", "DELETE", "HEAD", "OPTIONS", "GET", "PUT"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class MethodOverride:
    """``X-HTTP-Method-Override`` on a POST: for clients that can only send GET and POST."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            override = Headers(scope=scope).get("x-http-method-override", "").strip().upper()
            if override in _OVERRIDABLE:
                scope = dict(scope, method=override)
        await self.app(scope, receive, send)


class RequestId:
    """Every answer carries ``X-Request-ID``: the client's (if sane) or a new one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)
