from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from chunkd.storage.local import LocalStorage
from tests.auth.keys import SECRET, bearer, token
from tests.server.conftest import ClientFactory, service_of

ADMIN = bearer(token("root", scope="admin"))
ALICE = bearer(token("alice"))
BOB = bearer(token("bob"))

ROUTES = [
    ("GET", "/admin/uploads"),
    ("GET", "/admin/uploads/" + "0" * 32),
    ("POST", "/admin/uploads/" + "0" * 32 + "/cancel"),
    ("GET", "/admin/storage"),
    ("GET", "/admin/activity"),
    ("POST", "/admin/cleanup"),
]


@pytest.fixture
async def client(make_client: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(jwt_secret=SECRET, max_size=10_000) as client:
        yield client


async def session(client: httpx.AsyncClient, who: dict[str, str], size: int = 10) -> str:
    answer = await client.post("/uploads", json={"filename": "a.bin", "size": size}, headers=who)
    assert answer.status_code == 201, answer.text
    upload_id: str = answer.json()["id"]
    return upload_id


async def whole(client: httpx.AsyncClient, who: dict[str, str], body: bytes) -> str:
    answer = await client.post(
        "/uploads?complete=true&filename=w.bin",
        content=body,
        headers={**who, "Content-Type": "application/octet-stream"},
    )
    assert answer.status_code == 201, answer.text
    upload_id: str = answer.json()["id"]
    return upload_id


async def age(client: httpx.AsyncClient, upload_id: str, seconds: float) -> None:
    """Pretend the upload was last touched ``seconds`` ago."""
    service = service_of(client)
    changed = await service.catalog.compare_and_set(
        upload_id, {}, {"updated_at": service.clock() - seconds}
    )
    assert changed is not None


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_needs_a_token_and_the_admin_scope(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    upload_id = await session(client, ALICE)
    path = path.replace("0" * 32, upload_id)
    anonymous = await client.request(method, path)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "UNAUTHORIZED"
    user = await client.request(method, path, headers=ALICE)
    assert user.status_code == 403
    assert user.json()["error"]["code"] == "INSUFFICIENT_SCOPE"
    assert (await client.get(f"/uploads/{upload_id}", headers=ALICE)).json()["state"] == (
        "receiving"
    )  # a refused cancel changed nothing
    admin = await client.request(method, path, headers=ADMIN)
    assert admin.status_code == 200, admin.text


async def test_list_shows_every_owner_and_filters(client: httpx.AsyncClient) -> None:
    mine = await session(client, ALICE)
    theirs = await session(client, BOB)
    done = await whole(client, ALICE, b"hello")
    await age(client, theirs, 7200)

    everything = (await client.get("/admin/uploads", headers=ADMIN)).json()
    assert {u["id"] for u in everything["uploads"]} == {mine, theirs, done}
    assert everything["next"] is None
    by_id = {u["id"]: u for u in everything["uploads"]}
    assert by_id[theirs]["owner"] == "bob"
    assert by_id[done] | {"created_at": None, "updated_at": None} == {
        "id": done,
        "owner": "alice",
        "state": "complete",
        "protocol": "tus",
        "filename": "w.bin",
        "size": 5,
        "offset": 5,
        "error": None,
        "created_at": None,
        "updated_at": None,
        "expires_at": None,
    }

    async def ids(query: str) -> set[str]:
        answer = await client.get(f"/admin/uploads?{query}", headers=ADMIN)
        assert answer.status_code == 200, answer.text
        return {u["id"] for u in answer.json()["uploads"]}

    assert await ids("owner=alice") == {mine, done}
    assert await ids("state=complete") == {done}
    assert await ids("state=complete&state=receiving") == {mine, theirs, done}
    assert await ids("older_than=3600") == {theirs}
    assert await ids("owner=alice&state=receiving") == {mine}
    assert await ids("owner=nobody") == set()
    bad = await client.get("/admin/uploads?state=sleeping", headers=ADMIN)
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "VALIDATION_FAILED"


async def test_list_pages_by_id(client: httpx.AsyncClient) -> None:
    created = sorted([await session(client, ALICE) for _ in range(5)])
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        query = "limit=2" + (f"&after={after}" if after else "")
        page = (await client.get(f"/admin/uploads?{query}", headers=ADMIN)).json()
        seen += [u["id"] for u in page["uploads"]]
        pages += 1
        after = page["next"]
        if after is None:
            break
        assert after == seen[-1]
    assert seen == created
    assert pages == 3
    exact = (await client.get("/admin/uploads?limit=5", headers=ADMIN)).json()
    assert exact["next"] is None  # a full last page does not promise a next one


async def test_show_gives_everything(client: httpx.AsyncClient) -> None:
    upload_id = await whole(client, BOB, b"0123456789")
    answer = await client.get(f"/admin/uploads/{upload_id}", headers=ADMIN)
    assert answer.status_code == 200
    body = answer.json()
    as_owner = (await client.get(f"/uploads/{upload_id}", headers=BOB)).json()
    assert {key: body[key] for key in as_owner if key != "handoff"} == {
        key: value for key, value in as_owner.items() if key != "handoff"
    }
    assert body["owner"] == "bob"
    assert body["state"] == "complete"
    assert body["storage_keys"]  # the names only
    handle = (await service_of(client).catalog.get(upload_id)).storage  # type: ignore[union-attr]
    assert set(body["storage_keys"]) == set(handle)
    assert "storage" not in body  # memory storage's handle value is the id: check the field
    assert body["handoff"]["state"] in {"pending", "delivered"}
    assert body["partial"] is False and body["concat_parts"] is None

    missing = await client.get("/admin/uploads/" + "f" * 32, headers=ADMIN)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "UPLOAD_NOT_FOUND"
    assert (await client.get("/admin/uploads/not-an-id", headers=ADMIN)).status_code == 404


async def test_cancel_any_owners_upload(client: httpx.AsyncClient) -> None:
    upload_id = await session(client, ALICE)
    answer = await client.post(f"/admin/uploads/{upload_id}/cancel", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "aborted"
    assert (await client.get(f"/uploads/{upload_id}", headers=ALICE)).status_code == 410
    shown = await client.get(f"/admin/uploads/{upload_id}", headers=ADMIN)
    assert shown.json()["state"] == "aborted"  # the tombstone stays visible to an admin
    again = await client.post(f"/admin/uploads/{upload_id}/cancel", headers=ADMIN)
    assert again.status_code == 410
    unknown = await client.post("/admin/uploads/" + "f" * 32 + "/cancel", headers=ADMIN)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "UPLOAD_NOT_FOUND"


async def test_storage_adds_up_by_state_and_owner(client: httpx.AsyncClient) -> None:
    await session(client, ALICE, size=100)
    await session(client, ALICE, size=50)
    await whole(client, BOB, b"x" * 7)
    body = (await client.get("/admin/storage", headers=ADMIN)).json()
    assert body["total"] == {"uploads": 3, "bytes": 157}
    assert body["by_state"] == {
        "receiving": {"uploads": 2, "bytes": 150},
        "complete": {"uploads": 1, "bytes": 7},
    }
    assert body["by_owner"] == [
        {
            "owner": "alice",
            "uploads": 2,
            "bytes": 150,
            "by_state": {"receiving": {"uploads": 2, "bytes": 150}},
        },
        {
            "owner": "bob",
            "uploads": 1,
            "bytes": 7,
            "by_state": {"complete": {"uploads": 1, "bytes": 7}},
        },
    ]
    assert body["disk"] is None  # memory storage


async def test_storage_reports_free_disk_for_local_storage(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "data")
    async with make_client(storage, jwt_secret=SECRET) as client:
        body = (await client.get("/admin/storage", headers=ADMIN)).json()
    disk = body["disk"]
    assert disk["path"] == str((tmp_path / "data").resolve())
    assert 0 < disk["free"] <= disk["total"]
    assert disk["used"] <= disk["total"]


async def test_activity_over_the_last_hour_and_day(client: httpx.AsyncClient) -> None:
    await whole(client, ALICE, b"a" * 100)
    await whole(client, BOB, b"b" * 50)
    await session(client, ALICE)
    cancelled = await session(client, ALICE)
    await client.post(f"/admin/uploads/{cancelled}/cancel", headers=ADMIN)
    old = await whole(client, BOB, b"c" * 1000)
    service = service_of(client)
    now = service.clock()
    await service.catalog.compare_and_set(
        old, {}, {"created_at": now - 7300, "updated_at": now - 7200}
    )

    body = (await client.get("/admin/activity", headers=ADMIN)).json()
    hour, day = body["last_hour"], body["last_day"]
    assert (hour["started"], hour["completed"], hour["aborted"], hour["failed"]) == (4, 2, 1, 0)
    assert hour["bytes"] == 150
    assert hour["seconds"] == 3600
    assert hour["throughput"] == pytest.approx(150 / 3600)
    assert (day["started"], day["completed"], day["bytes"]) == (5, 3, 1150)
    assert day["mean_rate"] is not None and day["mean_rate"] > 0
    assert day["throughput"] == pytest.approx(1150 / 86400)


async def test_cleanup_sweeps_now(client: httpx.AsyncClient) -> None:
    stale = await session(client, ALICE)
    fresh = await session(client, ALICE)
    service = service_of(client)
    await service.catalog.compare_and_set(stale, {}, {"expires_at": service.clock() - 1})
    before = service.swept_bytes
    body = (await client.post("/admin/cleanup", headers=ADMIN)).json()
    assert body == {"expired": 1, "purged": 0, "bytes_reclaimed": body["bytes_reclaimed"]}
    assert service.swept_bytes == before + body["bytes_reclaimed"]
    assert (await client.get(f"/uploads/{stale}", headers=ALICE)).status_code == 410
    assert (await client.get(f"/uploads/{fresh}", headers=ALICE)).status_code == 200
    again = (await client.post("/admin/cleanup", headers=ADMIN)).json()
    assert again["expired"] == 0


async def test_admin_routes_are_in_the_openapi(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    assert set(paths["/admin/uploads"]) == {"get"}
    assert "403" in paths["/admin/storage"]["get"]["responses"]
    ref = paths["/admin/uploads/{upload_id}"]["get"]["responses"]["200"]["content"]
    assert ref["application/json"]["schema"]["$ref"].endswith("/AdminUpload")
    for name in ("AdminUploadPage", "StorageReport", "ActivityReport", "CleanupReport"):
        assert name in schema["components"]["schemas"]


async def test_anonymous_mode_has_the_admin_scope(make_client: ClientFactory) -> None:
    async with make_client() as client:
        assert (await client.get("/admin/uploads")).status_code == 200
