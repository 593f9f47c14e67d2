from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from chunkd.catalog.memory import MemoryCatalog
from chunkd.server.app import build_hooks, build_inspector, create_app, service_config
from chunkd.settings import Settings
from chunkd.storage.base import Storage
from chunkd.storage.memory import MemoryStorage
from chunkd.uploads.service import UploadService

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}

ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@asynccontextmanager
async def tus_client(
    storage: Storage | None = None, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    config = Settings(**{"max_size": 1000, **settings})
    service = UploadService(
        MemoryCatalog(),
        storage or MemoryStorage(),
        service_config(config),
        inspector=build_inspector(config),
        hooks=build_hooks(config),
    )
    app = create_app(config, service)
    async with service.catalog, service.storage:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.service = service  # type: ignore[attr-defined]
            yield client


@pytest.fixture
def make_client() -> ClientFactory:
    return tus_client


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with tus_client() as client:
        yield client


def service_of(client: httpx.AsyncClient) -> UploadService:
    service: UploadService = client.service  # type: ignore[attr-defined]
    return service


async def count_uploads(client: httpx.AsyncClient) -> int:
    catalog = service_of(client).catalog
    assert isinstance(catalog, MemoryCatalog)
    return len(catalog._records)


async def create(client: httpx.AsyncClient, length: int = 10, **headers: str) -> str:
    answer = await client.post("/files/", headers={**TUS, "Upload-Length": str(length), **headers})
    assert answer.status_code == 201, answer.text
    return answer.headers["Location"]
