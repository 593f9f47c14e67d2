"""Content validation wired into both protocols: type screening as bytes arrive, MRC headers
and the virus scan at completion (with a real clamd)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import mrcfile
import numpy as np
import pytest

from chunkd.storage.memory import MemoryStorage
from chunkd.testing.clamd import ClamdProcess, eicar, running_clamd
from chunkd.uploads.inspection import Inspector
from chunkd.validation.clamav import ClamdScanner
from chunkd.validation.sniff import ContentPolicy
from tests.server.conftest import PATCH, TUS, ClientFactory, service_of
from tests.validation import samples


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
async def audio_only(make_client: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(allowed_types="audio", max_size=10_000_000) as client:
        yield client


async def tus_send(
    client: httpx.AsyncClient, data: bytes, *pieces: int, **metadata: str
) -> tuple[str, list[httpx.Response]]:
    headers = {**TUS, "Upload-Length": str(len(data))}
    if metadata:
        headers["Upload-Metadata"] = ",".join(f"{k} {b64(v)}" for k, v in metadata.items())
    location = (await client.post("/files/", headers=headers)).headers["Location"]
    answers, offset = [], 0
    for size in (*pieces, len(data)):
        chunk = data[offset : offset + size] if size < len(data) else data[offset:]
        answer = await client.patch(
            location, content=chunk, headers={**PATCH, "Upload-Offset": str(offset)}
        )
        answers.append(answer)
        if answer.status_code != 204:
            break
        offset = int(answer.headers["Upload-Offset"])
        if offset == len(data):
            break
    return location, answers


def padded(head: bytes, size: int = 50_000) -> bytes:
    return head + os.urandom(size - len(head))


async def test_a_disallowed_type_is_refused_at_its_first_bytes(
    audio_only: httpx.AsyncClient,
) -> None:
    for data in (padded(samples.elf()), padded(samples.zip_archive())):
        location, answers = await tus_send(audio_only, data, filename="talk.wav")
        assert answers[-1].status_code == 415
        assert (await audio_only.head(location, headers=TUS)).headers["Upload-Offset"] == "0"


async def test_a_declared_type_must_match_the_bytes(make_client: ClientFactory) -> None:
    async with make_client(max_size=10_000_000) as client:  # no allow-list at all
        _, answers = await tus_send(client, padded(samples.zip_archive()), filetype="audio/wav")
        assert answers[-1].status_code == 415
        location, answers = await tus_send(client, padded(samples.zip_archive()))
        assert answers[-1].status_code == 204
        upload_id = location.rsplit("/", 1)[1]
        status = (await client.get(f"/uploads/{upload_id}")).json()
        assert status["sniffed_type"] == "application/zip"  # recorded even when all pass


async def test_audio_passes_and_a_head_in_small_pieces_is_judged_when_whole(
    audio_only: httpx.AsyncClient,
) -> None:
    data = padded(samples.wav(), 200_000)
    location, answers = await tus_send(audio_only, data, 100, 1000, 50_000, filetype="audio/wav")
    assert [a.status_code for a in answers] == [204, 204, 204, 204]
    upload_id = location.rsplit("/", 1)[1]
    assert (await audio_only.get(f"/uploads/{upload_id}")).json()["sniffed_type"] == "audio/wav"
    # an ELF whose head arrives in pieces is refused once the pieces add up
    location, answers = await tus_send(audio_only, padded(samples.elf()), 100, 1000)
    assert [a.status_code for a in answers] == [204, 204, 415]
    assert (await audio_only.head(location, headers=TUS)).headers["Upload-Offset"] == "1100"


async def test_rest_part_zero_is_screened(audio_only: httpx.AsyncClient) -> None:
    data = padded(samples.elf(), 200_000)
    session = (
        await audio_only.post(
            "/uploads", json={"filename": "a.wav", "size": len(data), "part_size": 100_000}
        )
    ).json()
    refused = await audio_only.put(f"/uploads/{session['id']}/parts/0", content=data[:100_000])
    assert refused.status_code == 415
    assert refused.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    whole = await audio_only.post(
        "/uploads?complete=true", content=data, headers={"Content-Type": "audio/wav"}
    )
    assert whole.status_code == 415


async def test_a_concatenated_upload_is_judged_at_completion(audio_only: httpx.AsyncClient) -> None:
    data = padded(samples.elf(), 10_000)
    parts = []
    for piece in (data[:10], data[10:]):
        created = await audio_only.post(
            "/files/",
            headers={**TUS, "Upload-Length": str(len(piece)), "Upload-Concat": "partial"},
        )
        location = created.headers["Location"]
        answer = await audio_only.patch(
            location, content=piece, headers={**PATCH, "Upload-Offset": "0"}
        )
        parts.append(location)
        assert answer.status_code == 204  # pieces are not judged on their own
    final = await audio_only.post(
        "/files/", headers={**TUS, "Upload-Concat": "final;" + " ".join(parts)}
    )
    assert final.status_code == 415


def mrc_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "stack.mrc"
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.arange(4 * 16 * 16, dtype=np.float32).reshape(4, 16, 16))
    return path.read_bytes()


async def test_mrc_headers_are_checked_at_completion(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    good = mrc_bytes(tmp_path)
    async with make_client(allowed_types="mrc", max_size=10_000_000) as client:
        ok = await client.post("/uploads?complete=true&filename=s.mrc", content=good,
                               headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        assert ok.status_code == 201, ok.text
        assert ok.json()["sniffed_type"] == "application/x-mrc"
        truncated = good[:-100]  # the header promises more data than arrived
        session = (
            await client.post("/uploads", json={"filename": "t.mrc", "size": len(truncated)})
        ).json()
        await client.put(f"/uploads/{session['id']}/parts/0", content=truncated)
        refused = await client.post(f"/uploads/{session['id']}/complete")
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "VALIDATION_FAILED"
        status = (await client.get(f"/uploads/{session['id']}")).json()
        assert status["state"] == "failed"
        storage = service_of(client).storage
        assert isinstance(storage, MemoryStorage)
        assert session["id"] not in storage.blobs  # refused bytes are removed


@pytest.fixture(scope="module")
def clamd() -> Iterator[ClamdProcess]:
    with running_clamd() as process:
        yield process


def scanning(make_client: ClientFactory, address: str) -> object:
    return make_client(max_size=10_000_000, clamd=address)


async def test_eicar_is_refused_and_clean_files_pass(
    make_client: ClientFactory, clamd: ClamdProcess
) -> None:
    async with make_client(max_size=10_000_000) as client:
        service = service_of(client)
        service.inspector.scanner = ClamdScanner(clamd.socket_path)
        infected = eicar() + b"\n"
        location, answers = await tus_send(client, infected)
        assert answers[-1].status_code == 422
        assert "INFECTED_FILE" in answers[-1].text
        upload_id = location.rsplit("/", 1)[1]
        status = (await client.get(f"/uploads/{upload_id}")).json()
        assert status["state"] == "failed" and clamd.signature in status["error"]
        clean = os.urandom(3_000_000)
        location, answers = await tus_send(client, clean)
        assert answers[-1].status_code == 204
        assert (await client.get(location)).content == clean


async def test_scanner_down_means_verifying_then_retried(
    make_client: ClientFactory, clamd: ClamdProcess, tmp_path: Path
) -> None:
    async with make_client(max_size=10_000_000) as client:
        service = service_of(client)
        service.inspector.scanner = ClamdScanner(str(tmp_path / "no-clamd.sock"), timeout=1)
        data = os.urandom(10_000)
        session = (await client.post("/uploads", json={"filename": "a", "size": len(data)})).json()
        await client.put(f"/uploads/{session['id']}/parts/0", content=data)
        waiting = await client.post(f"/uploads/{session['id']}/complete")
        assert waiting.status_code == 200 and waiting.json()["state"] == "verifying"
        assert (await client.get(f"/files/{session['id']}")).status_code == 409  # not served
        service.inspector.scanner = ClamdScanner(clamd.socket_path)
        assert await service.recover() == 1  # what the periodic sweeper does
        done = (await client.get(f"/uploads/{session['id']}")).json()
        assert done["state"] == "complete"
        assert (await client.get(f"/files/{session['id']}")).content == data


def test_inspector_defaults_accept_everything() -> None:
    inspector = Inspector(ContentPolicy(None))
    assert inspector.scanner is None
    asyncio.run(asyncio.sleep(0))
