"""A Python hook target used by the tests: ``python:tests.hooks.sample_hooks:hook``."""

from __future__ import annotations

from typing import Any

from chunkd.hooks.base import HookRefused

calls: list[tuple[str, dict[str, Any]]] = []


async def hook(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    calls.append((name, payload))
    metadata = payload.get("metadata") or {}
    if name == "pre-create":
        if metadata.get("filename") == "forbidden.bin":
            raise HookRefused("forbidden.bin is not accepted here")
        return {"metadata": {**metadata, "department": "radiology"}}
    if name == "pre-finish" and payload.get("size") == 13:
        raise HookRefused("thirteen bytes are unlucky")
    return {}
