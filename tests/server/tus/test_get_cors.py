from __future__ import annotations

import httpx

from tests.server.conftest import PATCH, TUS, ClientFactory, create


async def finished(client: httpx.AsyncClient, data: bytes, **headers: str) -> str:
    location = await create(client, len(data), **headers)
    await client.patch(location, content=data, headers={**PATCH, "Upload-Offset": "0"})
    return location


async def test_download_whole_and_ranges(client: httpx.AsyncClient) -> None:
    data = bytes(range(256)) * 3
    location = await finished(client, data, **{"Upload-Metadata": "filename PHNjcmlwdD4uaHRtbA=="})
    whole = await client.get(location)
    assert whole.status_code == 200
    assert whole.content == data
    assert whole.headers["Content-Type"] == "application/octet-stream"
    assert whole.headers["X-Content-Type-Options"] == "nosniff"
    assert whole.headers["Content-Disposition"].startswith("attachment; filename*=UTF-8''")
    assert "<" not in whole.headers["Content-Disposition"]
    part = await client.get(location, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    suffix = await client.get(location, headers={"Range": "bytes=-5"})
    assert suffix.content == data[-5:]
    beyond = await client.get(location, headers={"Range": "bytes=5000-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(data)}"


async def test_unfinished_uploads_are_not_served(client: httpx.AsyncClient) -> None:
    location = await create(client, 10)
    assert (await client.get(location)).status_code == 409


async def test_cors_exposes_tus_headers(make_client: ClientFactory) -> None:
    async with make_client(cors_origins="https://app.example") as client:
        preflight = await client.options(
            "/files/",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "upload-offset,tus-resumable,content-type",
            },
        )
        assert preflight.status_code == 200
        assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
        answer = await client.post(
            "/files/",
            headers={**TUS, "Upload-Length": "1", "Origin": "https://app.example"},
        )
        assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
        exposed = answer.headers["Access-Control-Expose-Headers"].lower()
        for header in ("location", "upload-offset", "upload-length", "tus-resumable"):
            assert header in exposed
        other = await client.post(
            "/files/", headers={**TUS, "Upload-Length": "1", "Origin": "https://evil.example"}
        )
        assert "Access-Control-Allow-Origin" not in other.headers


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    answer = await client.options("/files/", headers={"X-Request-ID": "abc-123"})
    assert answer.headers["X-Request-ID"] == "abc-123"
    made = await client.options("/files/", headers={"X-Request-ID": "bad id\t"})
    assert len(made.headers["X-Request-ID"]) == 32
    assert (await client.head("/files/" + "0" * 32, headers=TUS)).status_code == 404
