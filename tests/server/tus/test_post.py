from __future__ import annotations

import base64
import hashlib

import httpx
import pytest

from tests.server.conftest import PATCH, TUS, ClientFactory, count_uploads, create


async def test_creates_with_absolute_location_and_expiry(client: httpx.AsyncClient) -> None:
    answer = await client.post("/files/", headers={**TUS, "Upload-Length": "10"})
    assert answer.status_code == 201
    assert answer.headers["Location"].startswith("http://testserver/files/")
    assert answer.headers["Tus-Resumable"] == "1.0.0"
    assert answer.headers["Upload-Expires"].endswith(" GMT")
    assert answer.headers["Upload-Offset"] == "0"


async def test_version_is_required(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Tus-Resumable": "0.2.2"}):
        answer = await client.post("/files/", headers={**headers, "Upload-Length": "1"})
        assert answer.status_code == 412
        assert answer.headers["Tus-Version"] == "1.0.0"
    assert await count_uploads(client) == 0


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Upload-Length": "0100"}, 400),
        ({"Upload-Length": "-0"}, 400),
        ({"Upload-Length": "+5"}, 400),
        ({"Upload-Length": "1.3"}, 400),
        ({"Upload-Length": "NaN"}, 400),
        ({"Upload-Length": "123456789012345678901234567890"}, 400),
        ({"Upload-Length": "1001"}, 413),
        ({}, 400),
        ({"Upload-Length": "5", "Upload-Defer-Length": "1"}, 400),
        ({"Upload-Defer-Length": "2"}, 400),
        ({"Upload-Length": "5", "Upload-Metadata": "name !!"}, 400),
        ({"Upload-Length": "5", "Upload-Metadata": "a YQ==,a Yg=="}, 400),
        ({"Upload-Length": "5", "Upload-Concat": "parts"}, 400),
        ({"Upload-Length": "5", "Upload-Checksum": "sha1 xx"}, 400),
    ],
)
async def test_refused_creations_create_nothing(
    client: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    answer = await client.post("/files/", headers={**TUS, **headers})
    assert answer.status_code == status, answer.text
    assert answer.headers["Tus-Resumable"] == "1.0.0"
    assert await count_uploads(client) == 0


async def test_deferred_length(client: httpx.AsyncClient) -> None:
    location = (await client.post("/files/", headers={**TUS, "Upload-Defer-Length": "1"})).headers[
        "Location"
    ]
    head = await client.head(location, headers=TUS)
    assert head.headers["Upload-Defer-Length"] == "1"
    assert "Upload-Length" not in head.headers
    patched = await client.patch(
        location, content=b"abc", headers={**PATCH, "Upload-Offset": "0", "Upload-Length": "3"}
    )
    assert patched.status_code == 204
    assert (await client.head(location, headers=TUS)).headers["Upload-Length"] == "3"


async def test_creation_with_upload(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/files/", content=b"hello", headers={**PATCH, "Upload-Length": "10"}
    )
    assert answer.status_code == 201
    assert answer.headers["Upload-Offset"] == "5"


async def test_creation_with_upload_and_bad_checksum_says_where_the_upload_is(
    client: httpx.AsyncClient,
) -> None:
    wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    answer = await client.post(
        "/files/",
        content=b"hello",
        headers={**PATCH, "Upload-Length": "10", "Upload-Checksum": f"sha1 {wrong}"},
    )
    assert answer.status_code == 460
    head = await client.head(answer.headers["Location"], headers=TUS)
    assert head.headers["Upload-Offset"] == "0"


async def test_concatenation_of_partial_uploads(client: httpx.AsyncClient) -> None:
    locations = []
    for data in (b"abc", b"defg"):
        location = await create(client, len(data), **{"Upload-Concat": "partial"})
        await client.patch(location, content=data, headers={**PATCH, "Upload-Offset": "0"})
        head = await client.head(location, headers=TUS)
        assert head.headers["Upload-Concat"] == "partial"
        locations.append(location)
    final = await client.post(
        "/files/", headers={**TUS, "Upload-Concat": "final;" + " ".join(locations)}
    )
    assert final.status_code == 201
    head = await client.head(final.headers["Location"], headers=TUS)
    assert head.headers["Upload-Length"] == head.headers["Upload-Offset"] == "7"
    assert head.headers["Upload-Concat"] == "final;" + " ".join(locations)
    assert (await client.get(final.headers["Location"])).content == b"abcdefg"
    patched = await client.patch(
        final.headers["Location"], content=b"", headers={**PATCH, "Upload-Offset": "7"}
    )
    assert patched.status_code == 403


async def test_final_upload_refusals(client: httpx.AsyncClient) -> None:
    unfinished = await create(client, 5, **{"Upload-Concat": "partial"})
    for headers in (
        {"Upload-Concat": f"final;{unfinished}"},
        {"Upload-Concat": f"final;{unfinished}", "Upload-Length": "5"},
        {"Upload-Concat": "final;/files/" + "f" * 32},
        {"Upload-Concat": "final;/files/../../etc/passwd"},
    ):
        answer = await client.post("/files/", headers={**TUS, **headers})
        assert answer.status_code == 400, headers
    assert await count_uploads(client) == 1


async def test_location_behind_a_proxy(make_client: ClientFactory) -> None:
    async with make_client(behind_proxy=True, base_path="/api") as client:
        cases = [
            ({}, "http://testserver/api/files/"),
            (
                {"X-Forwarded-Host": "uploads.example.org", "X-Forwarded-Proto": "https"},
                "https://uploads.example.org/api/files/",
            ),
            (
                {"X-Forwarded-Host": "uploads.example.org", "X-Forwarded-Port": "8443"},
                "http://uploads.example.org:8443/api/files/",
            ),
            (
                {"Forwarded": 'for=1.2.3.4;host="up.example.org";proto=https, for=5.6.7.8'},
                "https://up.example.org/api/files/",
            ),
            ({"X-Forwarded-Host": "evil.example\r\nX-Injected: 1"}, "http://testserver/api/files/"),
        ]
        for headers, prefix in cases:
            answer = await client.post(
                "/api/files/", headers={**TUS, "Upload-Length": "1", **headers}
            )
            assert answer.headers["Location"].startswith(prefix), headers


async def test_forwarding_headers_are_ignored_unless_behind_a_proxy(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post(
        "/files/",
        headers={**TUS, "Upload-Length": "1", "X-Forwarded-Host": "evil.example"},
    )
    assert answer.headers["Location"].startswith("http://testserver/files/")
