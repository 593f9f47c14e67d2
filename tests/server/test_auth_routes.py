from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.auth.keys import SECRET, bearer, token
from tests.server.conftest import PATCH, TUS, ClientFactory, count_uploads

ALICE = bearer(token("alice"))
BOB = bearer(token("bob"))


@pytest.fixture
async def client(make_client: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(jwt_secret=SECRET, max_size=10_000) as client:
        yield client


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def tus_upload(client: httpx.AsyncClient, headers: dict[str, str], length: int = 10) -> str:
    answer = await client.post("/files/", headers={**TUS, **headers, "Upload-Length": str(length)})
    assert answer.status_code == 201, answer.text
    return path_of(answer.headers["Location"])


async def test_no_token_is_401_on_both_protocols(client: httpx.AsyncClient) -> None:
    tus = await client.post("/files/", headers={**TUS, "Upload-Length": "1"})
    assert tus.status_code == 401
    assert tus.headers["WWW-Authenticate"].startswith("Bearer")
    rest = await client.post("/uploads", json={"filename": "a", "size": 1})
    assert rest.status_code == 401
    assert rest.json()["error"]["code"] == "UNAUTHORIZED"
    bad = await client.post(
        "/uploads", json={"filename": "a", "size": 1}, headers={"Authorization": "Basic x"}
    )
    assert bad.status_code == 401
    assert await count_uploads(client) == 0
    assert (await client.options("/files/")).status_code == 204  # discovery stays open


async def test_another_owners_upload_is_404_on_every_route(client: httpx.AsyncClient) -> None:
    location = await tus_upload(client, ALICE)
    await client.patch(location, content=b"abc", headers={**PATCH, **ALICE, "Upload-Offset": "0"})
    session = (
        await client.post("/uploads", json={"filename": "a", "size": 10}, headers=ALICE)
    ).json()
    sid = session["id"]
    attempts = [
        ("HEAD", location, TUS, b""),
        ("PATCH", location, {**PATCH, "Upload-Offset": "3"}, b"def"),
        ("GET", location, {}, b""),
        ("DELETE", location, TUS, b""),
        ("GET", f"/uploads/{sid}", {}, b""),
        ("PUT", f"/uploads/{sid}/parts/0", {}, b"0123456789"),
        ("POST", f"/uploads/{sid}/complete", {}, b""),
        ("DELETE", f"/uploads/{sid}", {}, b""),
        ("POST", f"/uploads/{sid}/signed-url", {"Content-Type": "application/json"}, b"{}"),
    ]
    for method, url, headers, body in attempts:
        answer = await client.request(method, url, headers={**headers, **BOB}, content=body)
        assert answer.status_code == 404, (method, url, answer.status_code)
    head = await client.head(location, headers={**TUS, **ALICE})
    assert head.headers["Upload-Offset"] == "3"
    status = (await client.get(f"/uploads/{sid}", headers=ALICE)).json()
    assert (status["state"], status["parts_received"]) == ("receiving", 0)


async def test_tenants_do_not_share_owners(make_client: ClientFactory) -> None:
    async with make_client(jwt_secret=SECRET, jwt_tenant_claim="org") as client:
        one = bearer(token("same-user", org="clinic-a"))
        two = bearer(token("same-user", org="clinic-b"))
        location = await tus_upload(client, one)
        assert (await client.head(location, headers={**TUS, **two})).status_code == 404
        assert (await client.head(location, headers={**TUS, **one})).status_code == 200


async def test_missing_scope_is_403(client: httpx.AsyncClient) -> None:
    reader = bearer(token("alice", scope="read"))
    answer = await client.post("/uploads", json={"filename": "a", "size": 1}, headers=reader)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "INSUFFICIENT_SCOPE"


async def test_signed_creation_url_for_a_tokenless_tus_client(client: httpx.AsyncClient) -> None:
    minted = await client.post("/signed-urls", json={"max_size": 100}, headers=ALICE)
    assert minted.status_code == 201, minted.text
    create_url = path_of(minted.json()["tus"])
    too_big = await client.post(create_url, headers={**TUS, "Upload-Length": "101"})
    assert too_big.status_code == 413
    created = await client.post(create_url, headers={**TUS, "Upload-Length": "5"})
    assert created.status_code == 201
    location = path_of(created.headers["Location"])
    assert "sig=" in location  # the client continues without a token
    patched = await client.patch(
        location, content=b"hello", headers={**PATCH, "Upload-Offset": "0"}
    )
    assert patched.status_code == 204
    assert (await client.get(location)).content == b"hello"
    again = await client.post(create_url, headers={**TUS, "Upload-Length": "5"})
    assert again.status_code == 401  # single use
    upload_id = urlsplit(location).path.rsplit("/", 1)[1]
    mine = await client.get(f"/uploads/{upload_id}", headers=ALICE)
    assert mine.status_code == 200  # the upload belongs to whoever minted the URL
    other = await tus_upload(client, ALICE)
    retargeted = f"{urlsplit(other).path}?{urlsplit(location).query}"
    assert (await client.head(retargeted, headers=TUS)).status_code == 401


async def test_signed_rest_session_urls(client: httpx.AsyncClient) -> None:
    minted = (await client.post("/signed-urls", json={"max_size": 10}, headers=ALICE)).json()
    session = (
        await client.post(path_of(minted["rest"]), json={"filename": "a", "size": 10})
    ).json()
    part_url = path_of(session["urls"]["parts"].replace("{n}", "0"))
    assert "sig=" in part_url
    assert (await client.put(part_url, content=b"0123456789")).status_code == 201
    done = await client.post(path_of(session["urls"]["complete"]))
    assert done.status_code == 200 and done.json()["state"] == "complete"


async def test_signed_url_for_an_existing_upload(client: httpx.AsyncClient) -> None:
    location = await tus_upload(client, ALICE)
    upload_id = location.rsplit("/", 1)[1]
    minted = await client.post(
        f"/uploads/{upload_id}/signed-url", json={"expires_in": 60}, headers=ALICE
    )
    assert minted.status_code == 201
    url = path_of(minted.json()["tus"])
    assert (await client.head(url, headers=TUS)).status_code == 200
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    assert (await client.head(tampered, headers=TUS)).status_code == 401
    signature_only = await client.post(
        f"/uploads/{upload_id}/signed-url?{urlsplit(url).query}", json={}
    )
    assert signature_only.status_code == 403  # a capability cannot mint more capabilities


async def test_quotas(make_client: ClientFactory) -> None:
    async with make_client(jwt_secret=SECRET, max_open_uploads=2, max_bytes_stored=30) as client:
        await tus_upload(client, ALICE, 10)
        await tus_upload(client, ALICE, 10)
        third = await client.post("/uploads", json={"filename": "a", "size": 1}, headers=ALICE)
        assert third.status_code == 403
        assert third.json()["error"]["code"] == "QUOTA_EXCEEDED"
        assert third.json()["error"]["details"]["quota"] == "open_uploads"
        assert await count_uploads(client) == 2
        await tus_upload(client, BOB, 10)  # quotas are per owner
    async with make_client(jwt_secret=SECRET, max_bytes_in_flight=15) as client:
        await tus_upload(client, ALICE, 10)
        over = await client.post("/files/", headers={**TUS, **ALICE, "Upload-Length": "6"})
        assert over.status_code == 403
        assert await count_uploads(client) == 1


async def test_rate_limits_answer_429_with_retry_after(make_client: ClientFactory) -> None:
    async with make_client(jwt_secret=SECRET, rate_limit="3/minute") as client:
        location = await tus_upload(client, ALICE)
        for _ in range(2):
            assert (await client.head(location, headers={**TUS, **ALICE})).status_code == 200
        limited = await client.head(location, headers={**TUS, **ALICE})
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        rest = await client.get("/uploads/" + "0" * 32, headers=ALICE)
        assert rest.status_code == 429
        assert rest.json()["error"]["retryable"] is True
        assert (await client.head(location, headers={**TUS, **BOB})).status_code == 404
    async with make_client(jwt_secret=SECRET, rate_limit_per_address="2/minute") as client:
        await client.head("/files/" + "0" * 32, headers={**TUS, **ALICE})
        await client.head("/files/" + "0" * 32, headers={**TUS, **BOB})
        assert (await client.head("/files/" + "0" * 32, headers={**TUS, **BOB})).status_code == 429
