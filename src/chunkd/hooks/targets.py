"""Hook targets: Python callables named in the settings, and signed HTTP webhooks."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import inspect
import json
from collections.abc import Callable
from typing import Any

from chunkd.hooks.base import Hook, HookFailed, HookRefused

SIGNATURE_HEADER = "X-Chunkd-Signature"
DELIVERY_HEADER = "X-Chunkd-Delivery"


class PythonHook(Hook):
    """``module:function``, called as ``function(name, payload)`` (sync or async). It may
    return a dict (e.g. ``{"metadata": {...}}``) and raise ``HookRefused`` to refuse."""

    def __init__(self, target: str) -> None:
        module, _, name = target.partition(":")
        function = getattr(importlib.import_module(module), name, None)
        if not callable(function):
            raise ValueError(f"hook {target!r} is not a callable")
        self._function: Callable[..., Any] = function

    async def call(self, name: str, payload: dict[str, Any], delivery: str) -> dict[str, Any]:
        try:
            answer = self._function(name, payload)
            if inspect.isawaitable(answer):
                answer = await answer
        except HookRefused:
            raise
        except Exception as error:
            raise HookFailed(f"{type(error).__name__}: {error}") from error
        return answer if isinstance(answer, dict) else {}

    async def close(self) -> None:
        pass  # holds nothing


class WebhookHook(Hook):
    """POSTs ``{"hook", "delivery", "upload"}`` as JSON, signed with HMAC-SHA256 of the body
    (``X-Chunkd-Signature: sha256=<hex>``); ``X-Chunkd-Delivery`` is stable across retries,
    so a receiver can recognise a repeat. 2xx: delivered (a JSON object answer may carry
    ``metadata``); 4xx on an asking hook: refused with the body as the reason; anything
    else: failed, retried."""

    def __init__(self, url: str, secret: str | None, timeout: float) -> None:
        import httpx  # only servers with webhooks pay for the HTTP client

        self._httpx = httpx
        self._url = url
        self._key = secret.encode() if secret else None
        self._client = httpx.AsyncClient(timeout=timeout)

    async def call(self, name: str, payload: dict[str, Any], delivery: str) -> dict[str, Any]:
        body = json.dumps({"hook": name, "delivery": delivery, "upload": payload}).encode()
        headers = {"Content-Type": "application/json", DELIVERY_HEADER: delivery}
        if self._key is not None:
            digest = hmac.new(self._key, body, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={digest}"
        try:
            answer = await self._client.post(self._url, content=body, headers=headers)
        except (TimeoutError, self._httpx.HTTPError) as error:
            raise HookFailed(f"{type(error).__name__} calling the webhook") from error
        if 400 <= answer.status_code < 500 and name.startswith("pre-"):
            raise HookRefused(answer.text.strip()[:500] or f"refused by the {name} hook")
        if not 200 <= answer.status_code < 300:
            raise HookFailed(f"the webhook answered {answer.status_code}")
        try:
            parsed = answer.json()
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}

    async def close(self) -> None:
        await self._client.aclose()


def build_hook(target: str, secret: str | None, timeout: float) -> Hook:
    if target.startswith(("http://", "https://")):
        return WebhookHook(target, secret, timeout)
    if target.startswith("python:"):
        return PythonHook(target[len("python:") :])
    raise ValueError(f"hook {target!r}: give an http(s):// URL or python:module:function")
