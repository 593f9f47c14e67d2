from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random

import blake3
import crc32c
import httpx
import pytest

from tests.server.conftest import PATCH, TUS, ClientFactory


def assert_error(answer: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert set(error) >= {"code", "message", "hint", "retryable"}
    assert isinstance(error["retryable"], bool)
    return dict(error)


@pytest.fixture
async def client(make_client: ClientFactory) -> httpx.AsyncClient:  # type: ignore[misc]
    async with make_client(max_size=50_000_000) as client:
        yield client


async def create(client: httpx.AsyncClient, size: int, **more: object) -> dict[str, object]:
    answer = await client.post("/uploads", json={"filename": "a.bin", "size": size, **more})
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body


async def put(
    client: httpx.AsyncClient, upload_id: object, n: int, data: bytes, **headers: str
) -> httpx.Response:
    return await client.put(f"/uploads/{upload_id}/parts/{n}", content=data, headers=headers)


async def test_create_picks_the_part_size(client: httpx.AsyncClient) -> None:
    body = await create(client, 30_000_000)
    assert body["part_size"] == 5 * 1024 * 1024
    assert body["part_count"] == 6
    urls = body["urls"]
    assert isinstance(urls, dict)
    assert urls["parts"] == f"http://testserver/uploads/{body['id']}/parts/{{n}}"
    assert urls["complete"].endswith("/complete")
    own = await create(client, 1_000_000, part_size=100_000)
    assert (own["part_size"], own["part_count"]) == (100_000, 10)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "BAD_REQUEST"),
        (b'{"filename": "a", "size": -1}', 422, "VALIDATION_FAILED"),
        (b'{"filename": "", "size": 1}', 422, "VALIDATION_FAILED"),
        (b'{"size": 1}', 422, "VALIDATION_FAILED"),
        (b'{"filename": "a", "size": 1, "sha256": "nothex"}', 422, "VALIDATION_FAILED"),
        (b'{"filename": "a", "size": 1, "surprise": 1}', 422, "VALIDATION_FAILED"),
        (b'{"filename": "a", "size": 2000000, "part_size": 1000}', 422, "VALIDATION_FAILED"),
        (b'{"filename": "a", "size": 60000000}', 413, "UPLOAD_TOO_LARGE"),
    ],
)
async def test_create_refusals(
    client: httpx.AsyncClient, body: bytes, status: int, code: str
) -> None:
    answer = await client.post(
        "/uploads", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(answer, status, code)


async def test_raw_body_without_complete_is_415(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/uploads", content=b"x", headers={"Content-Type": "application/octet-stream"}
    )
    assert_error(answer, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_parts_in_random_order_from_8_connections(client: httpx.AsyncClient) -> None:
    data = os.urandom(3_000_000 + 17)
    session = await create(
        client, len(data), part_size=100_000, sha256=hashlib.sha256(data).hexdigest()
    )
    count = session["part_count"]
    assert count == 31
    order = list(range(31))
    random.shuffle(order)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in order:
        queue.put_nowait(index)

    async def connection() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            answer = await put(client, session["id"], n, data[n * 100_000 : (n + 1) * 100_000])
            assert answer.status_code == 201, answer.text

    await asyncio.gather(*(connection() for _ in range(8)))
    done = await client.post(f"/uploads/{session['id']}/complete")
    assert done.status_code == 200, done.text
    status = done.json()
    assert status["state"] == "complete"
    assert status["digests"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert status["missing_parts"] == []
    download = await client.get(status["location"])
    assert download.content == data


async def test_status_lists_missing_parts_and_resume_sends_only_those(
    client: httpx.AsyncClient,
) -> None:
    data = os.urandom(15 * 65536)
    session = await create(client, len(data), part_size=65536)
    sent = [0, 1, 2, 3, 10, 11, 13, 14]
    for n in sent:
        await put(client, session["id"], n, data[n * 65536 : (n + 1) * 65536])
    status = (await client.get(f"/uploads/{session['id']}")).json()
    assert status["missing_parts"] == [[4, 9], [12, 12]]
    assert status["parts_received"] == 8
    assert status["bytes_received"] == 8 * 65536
    assert status["protocol"] == "rest"
    incomplete = await client.post(f"/uploads/{session['id']}/complete")
    error = assert_error(incomplete, 409, "MISSING_PARTS")
    assert error["details"] == {"missing_parts": [[4, 9], [12, 12]]}
    for first, last in status["missing_parts"]:
        for n in range(first, last + 1):
            await put(client, session["id"], n, data[n * 65536 : (n + 1) * 65536])
    done = (await client.post(f"/uploads/{session['id']}/complete")).json()
    assert done["digests"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert done["offset"] == len(data)


async def test_duplicate_and_conflicting_parts(client: httpx.AsyncClient) -> None:
    session = await create(client, 200_000, part_size=100_000)
    part = os.urandom(100_000)
    first = await put(client, session["id"], 0, part)
    assert first.status_code == 201 and first.json()["new"] is True
    again = await put(client, session["id"], 0, part)
    assert again.status_code == 200 and again.json()["new"] is False
    assert again.json()["digest"] == f"blake3:{blake3.blake3(part).hexdigest()}"
    other = await put(client, session["id"], 0, os.urandom(100_000))
    assert_error(other, 409, "PART_CONFLICT")
    await put(client, session["id"], 1, os.urandom(100_000))
    assert (await client.post(f"/uploads/{session['id']}/complete")).status_code == 200
    download = await client.get(f"/files/{session['id']}")
    assert download.content[:100_000] == part


@pytest.mark.parametrize(
    ("n", "size", "status", "code"),
    [
        (3, 100_000, 400, "PART_OUT_OF_RANGE"),
        (-1, 100_000, 400, "PART_OUT_OF_RANGE"),
        (0, 99_999, 400, "PART_SIZE_MISMATCH"),
        (0, 100_001, 400, "PART_SIZE_MISMATCH"),
        (2, 50_001, 400, "PART_SIZE_MISMATCH"),
    ],
)
async def test_parts_of_the_wrong_place_or_size(
    client: httpx.AsyncClient, n: int, size: int, status: int, code: str
) -> None:
    session = await create(client, 250_000, part_size=100_000)
    assert_error(await put(client, session["id"], n, bytes(size)), status, code)
    assert (await client.get(f"/uploads/{session['id']}")).json()["parts_received"] == 0
    assert (await put(client, session["id"], 2, bytes(50_000))).status_code == 201


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


async def test_part_digests(client: httpx.AsyncClient) -> None:
    session = await create(client, 300_000, part_size=100_000)
    part = os.urandom(100_000)
    wrong = os.urandom(100_000)
    for headers in (
        {"Content-Digest": f"sha-256=:{b64(hashlib.sha256(wrong).digest())}:"},
        {"Content-MD5": b64(hashlib.md5(wrong).digest())},
        {"X-Checksum-Crc32c": b64(crc32c.crc32c(wrong).to_bytes(4, "big"))},
    ):
        answer = await put(client, session["id"], 0, part, **headers)
        error = assert_error(answer, 400, "PART_CHECKSUM_MISMATCH")
        assert error["retryable"] is True
    assert (await client.get(f"/uploads/{session['id']}")).json()["parts_received"] == 0
    good = {
        "Content-Digest": f"sha-256=:{b64(hashlib.sha256(part).digest())}:",
        "Content-MD5": b64(hashlib.md5(part).digest()),
        "X-Checksum-Crc32c": b64(crc32c.crc32c(part).to_bytes(4, "big")),
    }
    assert (await put(client, session["id"], 0, part, **good)).status_code == 201
    malformed = await put(client, session["id"], 1, part, **{"Content-MD5": "!!"})
    assert_error(malformed, 400, "INVALID_HEADER")


async def test_whole_file_digest_mismatch_fails_the_upload(client: httpx.AsyncClient) -> None:
    data = os.urandom(200_000)
    declared = {
        "sha256": hashlib.sha256(b"something else").hexdigest(),
        "md5": b64(hashlib.md5(data).digest()),
        "crc32c": crc32c.crc32c(data).to_bytes(4, "big").hex(),
    }
    session = await create(client, len(data), part_size=100_000, **declared)
    await put(client, session["id"], 1, data[100_000:])
    await put(client, session["id"], 0, data[:100_000])
    for _ in range(2):  # completing again answers the same
        answer = await client.post(f"/uploads/{session['id']}/complete")
        error = assert_error(answer, 422, "DIGEST_MISMATCH")
        details = error["details"]
        assert isinstance(details, dict)
        assert details["expected"]["sha256"] == declared["sha256"]
        assert details["actual"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert details["actual"]["md5"] == hashlib.md5(data).hexdigest()
    status = (await client.get(f"/uploads/{session['id']}")).json()
    assert status["state"] == "failed"
    assert "sha256 expected" in status["error"]


async def test_digests_declared_at_complete_are_verified(client: httpx.AsyncClient) -> None:
    data = os.urandom(250_000)
    right = hashlib.sha256(data).hexdigest()
    good = await create(client, len(data), part_size=100_000)
    for n in range(3):
        await put(client, good["id"], n, data[n * 100_000 : (n + 1) * 100_000])
    done = await client.post(f"/uploads/{good['id']}/complete", json={"sha256": right})
    assert done.status_code == 200, done.text
    assert done.json()["digests"]["sha256"] == right
    again = await client.post(f"/uploads/{good['id']}/complete", json={"sha256": right})
    assert again.json() == done.json()
    other = await client.post(f"/uploads/{good['id']}/complete", json={"sha256": "00" * 32})
    assert_error(other, 409, "DIGEST_CONFLICT")
    # an algorithm not computed at completion is checked against the stored file
    md5 = hashlib.md5(data).hexdigest()
    late = await client.post(f"/uploads/{good['id']}/complete", json={"md5": md5})
    assert late.status_code == 200 and late.json()["state"] == "complete"
    wrong = await client.post(f"/uploads/{good['id']}/complete", json={"md5": "0" * 32})
    assert_error(wrong, 409, "DIGEST_CONFLICT")

    bad = await create(client, len(data), part_size=100_000)
    for n in range(3):
        await put(client, bad["id"], n, data[n * 100_000 : (n + 1) * 100_000])
    md5 = hashlib.md5(b"other bytes").hexdigest()
    refused = await client.post(f"/uploads/{bad['id']}/complete", json={"md5": md5})
    error = assert_error(refused, 422, "DIGEST_MISMATCH")
    assert error["details"]["actual"]["md5"] == hashlib.md5(data).hexdigest()  # type: ignore[index]


async def test_a_digest_at_complete_must_agree_with_creation(client: httpx.AsyncClient) -> None:
    data = os.urandom(1000)
    session = await create(client, len(data), sha256=hashlib.sha256(data).hexdigest())
    await put(client, session["id"], 0, data)
    url = f"/uploads/{session['id']}/complete"
    clash = await client.post(url, json={"sha256": hashlib.sha256(b"x").hexdigest()})
    assert_error(clash, 409, "DIGEST_CONFLICT")
    assert (await client.get(f"/uploads/{session['id']}")).json()["state"] == "receiving"
    assert_error(await client.post(url, content=b"{oops"), 400, "BAD_REQUEST")
    assert_error(await client.post(url, json={"sha256": "zz"}), 422, "VALIDATION_FAILED")
    assert_error(await client.post(url, json={"sha1": "ab"}), 422, "VALIDATION_FAILED")
    done = await client.post(url, json={"sha256": hashlib.sha256(data).hexdigest()})
    assert done.status_code == 200


async def test_completing_twice_answers_the_same(client: httpx.AsyncClient) -> None:
    data = os.urandom(1000)
    session = await create(client, len(data), md5=hashlib.md5(data).hexdigest())
    await put(client, session["id"], 0, data)
    first = await client.post(f"/uploads/{session['id']}/complete")
    second = await client.post(f"/uploads/{session['id']}/complete")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["digests"]["md5"] == hashlib.md5(data).hexdigest()
    assert_error(await put(client, session["id"], 0, data), 409, "UPLOAD_NOT_RECEIVING")


async def test_empty_file(client: httpx.AsyncClient) -> None:
    session = await create(client, 0)
    assert session["part_count"] == 0
    done = await client.post(f"/uploads/{session['id']}/complete")
    assert done.json()["digests"]["sha256"] == hashlib.sha256(b"").hexdigest()


async def test_abort(client: httpx.AsyncClient) -> None:
    session = await create(client, 100)
    assert (await client.delete(f"/uploads/{session['id']}")).status_code == 204
    assert_error(await client.get(f"/uploads/{session['id']}"), 410, "UPLOAD_ABORTED")
    assert_error(await put(client, session["id"], 0, bytes(100)), 410, "UPLOAD_ABORTED")
    assert_error(await client.delete(f"/uploads/{session['id']}"), 410, "UPLOAD_ABORTED")


async def test_dot_segments_reach_no_upload(client: httpx.AsyncClient) -> None:
    for path in ("/uploads/..", "/uploads/%2e%2e/parts/0", "/uploads/%2e%2e/complete"):
        answer = await client.get(path)
        assert answer.status_code in (404, 405)
        assert "error" in answer.json()


@pytest.mark.parametrize("upload_id", ["0" * 32, "%2e%2e", "ABC", "a" * 1000])
async def test_unknown_uploads_are_404(client: httpx.AsyncClient, upload_id: str) -> None:
    assert_error(await client.get(f"/uploads/{upload_id}"), 404, "UPLOAD_NOT_FOUND")
    assert_error(await put(client, upload_id, 0, b"x"), 404, "UPLOAD_NOT_FOUND")
    assert_error(await client.post(f"/uploads/{upload_id}/complete"), 404, "UPLOAD_NOT_FOUND")


async def test_routing_errors_have_the_same_shape(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/nowhere"), 404, "NOT_FOUND")
    assert_error(await client.patch("/uploads"), 405, "METHOD_NOT_ALLOWED")
    assert_error(await client.put(f"/uploads/{'0' * 32}/parts/x"), 422, "VALIDATION_FAILED")


async def test_whole_file_in_one_request(client: httpx.AsyncClient) -> None:
    data = os.urandom(70_000)
    digest = hashlib.sha256(data).hexdigest()
    raw = await client.post(
        f"/uploads?complete=true&filename=x.wav&sha256={digest}",
        content=data,
        headers={"Content-Type": "audio/wav"},
    )
    assert raw.status_code == 201, raw.text
    assert raw.json()["state"] == "complete"
    assert raw.json()["content_type"] == "audio/wav"
    assert (await client.get(raw.json()["location"])).content == data
    bad = await client.post(
        f"/uploads?complete=true&sha256={'0' * 64}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert_error(bad, 422, "DIGEST_MISMATCH")
    form = await client.post(
        "/uploads?complete=true",
        files={"file": ("form.bin", data, "application/octet-stream")},
        data={"sha256": digest},
    )
    assert form.status_code == 201, form.text
    assert form.json()["filename"] == "form.bin"
    assert form.json()["digests"]["sha256"] == digest
    missing = await client.post("/uploads?complete=true", files={"other": ("a", b"x")})
    assert_error(missing, 400, "BAD_REQUEST")


async def test_tus_uploads_answer_status_and_refuse_parts(client: httpx.AsyncClient) -> None:
    created = await client.post("/files/", headers={**TUS, "Upload-Length": "10"})
    location = created.headers["Location"]
    await client.patch(location, content=b"abcd", headers={**PATCH, "Upload-Offset": "0"})
    upload_id = location.rsplit("/", 1)[1]
    status = (await client.get(f"/uploads/{upload_id}")).json()
    assert (status["protocol"], status["bytes_received"], status["size"]) == ("tus", 4, 10)
    assert status["missing_parts"] is None
    assert_error(await put(client, upload_id, 0, b"x"), 409, "NOT_A_SESSION")
    session = await create(client, 10)
    patched = await client.patch(
        f"/files/{session['id']}", content=b"x", headers={**PATCH, "Upload-Offset": "0"}
    )
    assert patched.status_code == 409
