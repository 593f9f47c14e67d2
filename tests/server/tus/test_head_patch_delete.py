from __future__ import annotations

import base64
import hashlib

import httpx
import pytest

from tests.server.conftest import PATCH, TUS, create


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_head_describes_the_upload(client: httpx.AsyncClient) -> None:
    location = await create(client, 10, **{"Upload-Metadata": "filename YS53YXY=,flag"})
    answer = await client.head(location, headers=TUS)
    assert answer.status_code == 200
    assert answer.headers["Upload-Offset"] == "0"
    assert answer.headers["Upload-Length"] == "10"
    assert answer.headers["Upload-Metadata"] == "filename YS53YXY=,flag"
    assert answer.headers["Cache-Control"] == "no-store"
    assert "Upload-Expires" in answer.headers


@pytest.mark.parametrize(
    "path",
    [
        "/files/" + "0" * 32,
        "/files/..",
        "/files/%2e%2e",
        "/files/%2E%2E%2Fcatalog.sqlite3",
        "/files/../catalog.sqlite3",
        "/files/a/b",
        "/files/" + "A" * 32,
    ],
)
async def test_unknown_and_hostile_ids_are_404(client: httpx.AsyncClient, path: str) -> None:
    for method in ("HEAD", "PATCH", "DELETE", "GET"):
        answer = await client.request(
            method, path, headers={**PATCH, "Upload-Offset": "0"}, content=b"x"
        )
        assert answer.status_code == 404, (method, path)


async def test_patch_appends_and_reports_the_offset(client: httpx.AsyncClient) -> None:
    location = await create(client, 10)
    answer = await client.patch(location, content=b"01234", headers={**PATCH, "Upload-Offset": "0"})
    assert answer.status_code == 204
    assert answer.headers["Upload-Offset"] == "5"
    assert "Upload-Expires" in answer.headers
    answer = await client.patch(location, content=b"56789", headers={**PATCH, "Upload-Offset": "5"})
    assert answer.headers["Upload-Offset"] == "10"
    assert "Upload-Expires" not in answer.headers  # finished uploads do not expire
    head = await client.head(location, headers=TUS)
    assert head.headers["Repr-Digest"] == f"sha-256=:{b64(hashlib.sha256(b'0123456789').digest())}:"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "application/octet-stream", "Upload-Offset": "0"}, 415),
        ({"Content-Type": "text/plain", "Upload-Offset": "0"}, 415),
        ({}, 400),  # no Upload-Offset
        ({"Upload-Offset": "-0"}, 400),
        ({"Upload-Offset": "01"}, 400),
        ({"Upload-Offset": "3"}, 409),
        ({"Upload-Offset": "0", "Upload-Checksum": "whirlpool AAAA"}, 400),
        (
            {"Upload-Offset": "0", "Upload-Checksum": f"sha1 {b64(hashlib.sha1(b'no').digest())}"},
            460,
        ),
        ({"Upload-Offset": "0", "Upload-Length": "8"}, 400),  # length is not deferred
        ({"Upload-Offset": "0", "Tus-Resumable": "1.0"}, 412),
    ],
)
async def test_refused_patches_change_nothing(
    client: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    location = await create(client, 10)
    answer = await client.patch(location, content=b"abc", headers={**PATCH, **headers})
    assert answer.status_code == status, answer.text
    assert (await client.head(location, headers=TUS)).headers["Upload-Offset"] == "0"


async def test_patch_past_the_length_is_413(client: httpx.AsyncClient) -> None:
    location = await create(client, 4)
    answer = await client.patch(location, content=b"abcde", headers={**PATCH, "Upload-Offset": "0"})
    assert answer.status_code == 413
    assert (await client.head(location, headers=TUS)).headers["Upload-Offset"] == "0"


async def test_matching_checksum_is_accepted(client: httpx.AsyncClient) -> None:
    location = await create(client, 3)
    for algorithm in ("crc32", "crc32c", "md5", "sha256"):
        header = {"Upload-Offset": "0", "Upload-Checksum": f"{algorithm} AAAA"}
        assert (
            await client.patch(location, content=b"abc", headers={**PATCH, **header})
        ).status_code in (400, 460)
    digest = b64(hashlib.sha256(b"abc").digest())
    answer = await client.patch(
        location,
        content=b"abc",
        headers={**PATCH, "Upload-Offset": "0", "Upload-Checksum": f"sha256 {digest}"},
    )
    assert answer.status_code == 204


async def test_delete_terminates(client: httpx.AsyncClient) -> None:
    location = await create(client, 10)
    assert (await client.delete(location, headers=TUS)).status_code == 204
    assert (await client.head(location, headers=TUS)).status_code == 410
    assert (await client.delete(location, headers=TUS)).status_code == 410
    patched = await client.patch(location, content=b"a", headers={**PATCH, "Upload-Offset": "0"})
    assert patched.status_code == 410


async def test_method_override(client: httpx.AsyncClient) -> None:
    location = await create(client, 3)
    answer = await client.post(
        location,
        content=b"abc",
        headers={**PATCH, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"},
    )
    assert answer.status_code == 204
    assert answer.headers["Upload-Offset"] == "3"
    answer = await client.post(location, headers={**TUS, "X-HTTP-Method-Override": "DELETE"})
    assert answer.status_code == 204


async def test_an_error_after_the_whole_body_answers_at_once(client: httpx.AsyncClient) -> None:
    import time

    location = await create(client, 10)
    started = time.monotonic()
    answer = await client.patch(
        location,
        content=b"abc",
        headers={**PATCH, "Upload-Offset": "0", "Upload-Checksum": f"md5 {b64(bytes(16))}"},
    )
    assert answer.status_code == 460
    assert time.monotonic() - started < 1.0
