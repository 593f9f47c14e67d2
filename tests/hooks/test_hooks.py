from __future__ import annotations

import asyncio

import httpx

from chunkd.hooks.dispatcher import HandoffDispatcher
from tests.hooks import sample_hooks
from tests.server.conftest import ClientFactory, service_of

HOOK = "python:tests.hooks.sample_hooks:hook"


async def session(client: httpx.AsyncClient, name: str, data: bytes) -> httpx.Response:
    created = await client.post("/uploads", json={"filename": name, "size": len(data)})
    if created.status_code != 201:
        return created
    upload_id = created.json()["id"]
    if data:
        await client.put(f"/uploads/{upload_id}/parts/0", content=data)
    return await client.post(f"/uploads/{upload_id}/complete")


async def test_pre_create_refuses_or_changes_metadata(make_client: ClientFactory) -> None:
    async with make_client(hooks=HOOK) as client:
        refused = await client.post("/uploads", json={"filename": "forbidden.bin", "size": 1})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "HOOK_REFUSED"
        assert "forbidden.bin" in refused.json()["error"]["message"]
        done = await session(client, "scan.bin", b"hello")
        assert done.json()["metadata"]["department"] == "radiology"


async def test_pre_finish_refuses(make_client: ClientFactory) -> None:
    async with make_client(hooks=HOOK) as client:
        refused = await session(client, "a.bin", b"13 bytes long")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "HOOK_REFUSED"
        upload_id = refused.url.path.split("/")[2]
        status = (await client.get(f"/uploads/{upload_id}")).json()
        assert status["state"] == "failed" and "unlucky" in status["error"]


async def test_the_hand_off_is_delivered_once(make_client: ClientFactory) -> None:
    sample_hooks.calls.clear()
    async with make_client(hooks=HOOK) as client:
        done = await session(client, "a.bin", b"hello")
        upload_id = done.json()["id"]
        assert done.json()["handoff"]["state"] == "pending"
        service = service_of(client)
        dispatcher = HandoffDispatcher(service.catalog, service.hooks)
        assert await dispatcher.run_once() == 1
        assert await dispatcher.run_once() == 0  # never twice
        await asyncio.sleep(0.05)  # post-create / post-receive notifications run in the background
        finishes = [p for name, p in sample_hooks.calls if name == "post-finish"]
        assert [p["id"] for p in finishes] == [upload_id]
        assert finishes[0]["digests"]["sha256"]
        status = (await client.get(f"/uploads/{upload_id}")).json()
        assert status["handoff"]["state"] == "delivered" and status["handoff"]["attempts"] == 1
        names = {name for name, _ in sample_hooks.calls}
        assert {"pre-create", "post-create", "pre-finish", "post-finish"} <= names


async def test_the_hand_off_outcome_is_an_event(make_client: ClientFactory) -> None:
    async with make_client(hooks=HOOK) as client:
        done = await session(client, "b.bin", b"hello")
        upload_id = done.json()["id"]
        service = service_of(client)
        dispatcher = HandoffDispatcher(service.catalog, service.hooks, events=service.events)
        with service.events.subscribe(upload_id=upload_id) as subscription:
            assert await dispatcher.run_once() == 1
            event = await subscription.get(1.0)
        assert event is not None and event.type == "handoff"
        assert event.data == {"state": "delivered", "attempts": 1, "error": None}


async def test_without_a_pipeline_the_status_shows_no_hand_off(
    make_client: ClientFactory,
) -> None:
    async with make_client() as client:
        done = await session(client, "c.bin", b"hello")
        assert done.json()["state"] == "complete" and done.json()["handoff"] is None
