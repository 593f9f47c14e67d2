"""Server logs are JSON lines with a request id, and never hold tokens, signatures, signed
URLs or payload bytes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from chunkd.testing.server import ServerProcess
from tests.auth.keys import SECRET, token

TUS = {"Tus-Resumable": "1.0.0"}
PAYLOAD = b"PAYLOAD-MARKER-" * 100


def test_logs_are_json_with_request_ids_and_no_secrets(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data", "--log-level", "info", env={"CHUNKD_JWT_SECRET": SECRET}
    )
    secret_token = token("alice")
    with server, httpx.Client(timeout=10) as client:
        auth = {"Authorization": f"Bearer {secret_token}"}
        created = client.post(
            server.files_url,
            headers={**TUS, **auth, "Upload-Length": str(len(PAYLOAD)), "X-Request-ID": "trace-42"},
        )
        location = created.headers["Location"]
        client.patch(
            location,
            content=PAYLOAD,
            headers={
                **TUS,
                **auth,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        minted = client.post(
            f"{server.url}/signed-urls", json={"max_size": 10}, headers=auth
        ).json()
        signed = minted["tus"]
        client.post(signed, headers={**TUS, "Upload-Length": "5"})
        client.head(signed.replace("sig=", "sig=tampered"), headers=TUS)
    text = server.log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "chunkd.access"]
    assert any(line["request_id"] == "trace-42" and line["status"] == 201 for line in access)
    assert all(line["request_id"] for line in access)
    signature = signed.split("sig=", 1)[1]
    for secret in (secret_token, signature, signature[:20], SECRET, "PAYLOAD-MARKER", "sig="):
        assert secret not in text, secret
