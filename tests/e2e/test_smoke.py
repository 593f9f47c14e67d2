from __future__ import annotations

import httpx

from chunkd.testing.server import ServerProcess

TUS = {"Tus-Resumable": "1.0.0"}


def test_upload_and_download_through_the_real_process(server: ServerProcess) -> None:
    with httpx.Client() as client:
        created = client.post(server.files_url, headers={**TUS, "Upload-Length": "5"})
        assert created.status_code == 201
        location = created.headers["Location"]
        patched = client.patch(
            location,
            content=b"hello",
            headers={
                **TUS,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert patched.status_code == 204
        assert patched.headers["Upload-Offset"] == "5"
        assert client.get(location).content == b"hello"
