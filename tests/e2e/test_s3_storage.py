"""chunkd serve on S3-compatible storage (a private moto server): tus and REST uploads,
concatenation, downloads with Range, all byte-identical with the right digests."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from chunkd.testing.s3 import running_moto
from chunkd.testing.server import ServerProcess

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}
MiB = 1 << 20


def test_uploads_on_s3(tmp_path: Path) -> None:
    with running_moto() as s3:
        s3.create_bucket("chunkd")
        env = s3.chunkd_env("chunkd")
        with (
            ServerProcess(tmp_path / "data", env=env) as server,
            httpx.Client(timeout=60) as client,
        ):
            extensions = client.options(server.files_url).headers["Tus-Extension"]
            # tus: PATCHes smaller than an S3 part, spooled and stored as tails in between
            data = os.urandom(12 * MiB + 12345)
            created = client.post(
                server.files_url, headers={**TUS, "Upload-Length": str(len(data))}
            )
            location = created.headers["Location"]
            for offset in range(0, len(data), 3 * MiB):
                answer = client.patch(location, content=data[offset : offset + 3 * MiB],
                                      headers={**PATCH, "Upload-Offset": str(offset)})  # fmt: skip
                assert answer.status_code == 204, answer.text
            assert client.get(location).content == data
            part = client.get(location, headers={"Range": "bytes=5242870-5242889"})
            assert part.status_code == 206 and part.content == data[5242870:5242890]
            upload_id = location.rsplit("/", 1)[1]
            status = client.get(f"{server.url}/uploads/{upload_id}").json()
            assert status["digests"]["sha256"] == hashlib.sha256(data).hexdigest()

            # REST: parts in parallel, at least S3's 5 MiB each
            data = os.urandom(17 * MiB)
            session = client.post(f"{server.url}/uploads", json={
                "filename": "scan.mrc", "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest()}).json()  # fmt: skip
            size = session["part_size"]
            assert size >= 5 * MiB
            spec = {"filename": "a", "size": 10 * MiB, "part_size": MiB}
            small = client.post(f"{server.url}/uploads", json=spec)
            assert small.status_code == 422  # under the storage's minimum part size

            def put(n: int) -> int:
                chunk = data[n * size : (n + 1) * size]
                return client.put(
                    f"{server.url}/uploads/{session['id']}/parts/{n}", content=chunk
                ).status_code

            with ThreadPoolExecutor(4) as pool:
                assert set(pool.map(put, range(session["part_count"]))) == {201}
            done = client.post(f"{server.url}/uploads/{session['id']}/complete")
            assert done.status_code == 200, done.text
            assert done.json()["digests"]["sha256"] == hashlib.sha256(data).hexdigest()
            assert client.get(done.json()["location"]).content == data

            if "concatenation" in extensions.split(","):
                pieces = [os.urandom(6 * MiB), os.urandom(5 * MiB + 7)]
                partials = []
                for piece in pieces:
                    headers = {**TUS, "Upload-Length": str(len(piece)), "Upload-Concat": "partial"}
                    p = client.post(server.files_url, headers=headers)
                    client.patch(
                        p.headers["Location"],
                        content=piece,
                        headers={**PATCH, "Upload-Offset": "0"},
                    )
                    partials.append(p.headers["Location"])
                final = client.post(
                    server.files_url,
                    headers={**TUS, "Upload-Concat": "final;" + " ".join(partials)},
                )
                assert final.status_code == 201, final.text
                assert client.get(final.headers["Location"]).content == b"".join(pieces)
