"""Every REST error is ``{"error": {"code", "message", "hint", "retryable"}}``.

Handlers turn the catalogue's ``ChunkdError``, request validation failures, routing errors and
storage failures into that shape with the catalogue's status. tus routes answer errors their
own way (see ``server.tus.context``) and never reach these handlers.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chunkd.exceptions import (
    BadRequest,
    ChunkdError,
    RequestTooSlow,
    StorageUnavailable,
    ValidationFailed,
)
from chunkd.server.bodies import drain
from chunkd.server.rest.models import ErrorBody

log = logging.getLogger("chunkd.server")

_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}

# Documented on every REST operation, so clients (and schema checkers) know their shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Malformed request",
        401: "Authentication required, or the token or signed URL is not valid",
        403: "Not allowed: missing scope or over a quota",
        404: "No such upload (or not yours)",
        409: "Conflict: state, missing parts, or a part stored with other bytes",
        410: "The upload expired or was aborted",
        413: "Too large",
        415: "Unsupported media type",
        422: "Validation failed, or the file does not match its declared digest",
        423: "The upload is busy; retry",
        429: "Too many requests; retry after Retry-After seconds",
        503: "Temporarily unavailable; retry",
    }.items()
}


def error_response(error: ChunkdError) -> JSONResponse:
    from chunkd.server.tus.context import error_headers

    return JSONResponse(
        {"error": error.to_dict()}, status_code=error.status, headers=error_headers(error)
    )


async def _chunkd_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ChunkdError)
    if not isinstance(error, RequestTooSlow):  # draining a too-slow body is what it refused
        await drain(request)
    return error_response(error)


async def _validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    problems = [
        {"loc": [str(part) for part in problem.get("loc", ())], "msg": str(problem.get("msg"))}
        for problem in error.errors()
    ]
    if any(problem.get("type") == "json_invalid" for problem in error.errors()):
        return error_response(BadRequest("the body is not valid JSON"))
    return error_response(
        ValidationFailed("the request is not valid", details={"problems": problems})
    )


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    code = _HTTP_CODES.get(error.status_code, "HTTP_ERROR")
    body = {
        "error": {
            "code": code,
            "message": str(error.detail),
            "hint": "See /docs for the API.",
            "retryable": False,
        }
    }
    return JSONResponse(body, status_code=error.status_code, headers=error.headers)


async def _os_error(request: Request, error: Exception) -> Response:
    log.exception("storage failure", exc_info=error)
    return error_response(StorageUnavailable("the server could not reach its storage"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(ChunkdError, _chunkd_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(OSError, _os_error)
