"""The hand-off to processing against the real server: a flaky webhook, and kill -9 between
completion and delivery. Each finished upload is delivered exactly once."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from chunkd.testing.processes import free_port
from chunkd.testing.server import ServerProcess
from tests.e2e.webhooks import Receiver, hook_env

TUS = {"Tus-Resumable": "1.0.0"}


def finished_upload(client: httpx.Client, server: ServerProcess, data: bytes) -> str:
    created = client.post(server.files_url, headers={**TUS, "Upload-Length": str(len(data))})
    location = created.headers["Location"]
    client.patch(location, content=data, headers={**TUS, "Upload-Offset": "0",
                 "Content-Type": "application/offset+octet-stream"})  # fmt: skip
    return str(location).rsplit("/", 1)[1]


def wait_for(condition: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_webhook_that_fails_twice_then_succeeds(tmp_path: Path) -> None:
    port = free_port()
    with (
        Receiver(port, failures=2) as receiver,
        ServerProcess(tmp_path / "data", env=hook_env(port)) as server,
        httpx.Client(timeout=10) as client,
    ):
        upload_id = finished_upload(client, server, b"a finished recording")
        wait_for(lambda: receiver.delivered[upload_id] == 1)
        time.sleep(1.0)  # time for a wrong second delivery to show
        assert receiver.delivered == Counter({upload_id: 1})
        assert receiver.calls == 3 and receiver.bad_signatures == 0
        handoff = client.get(f"{server.url}/uploads/{upload_id}").json()["handoff"]
        assert handoff["state"] == "delivered" and handoff["attempts"] == 3


def test_kill_9_between_completion_and_delivery(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess(tmp_path / "data", env=hook_env(port))
    server.start()
    try:
        with httpx.Client(timeout=10) as client:  # the receiver is down: nothing can deliver
            ids = [finished_upload(client, server, bytes([n]) * 1000) for n in range(5)]
            for upload_id in ids:
                status = client.get(f"{server.url}/uploads/{upload_id}").json()
                assert status["state"] == "complete"
                assert status["handoff"]["state"] == "pending"
        server.kill()
        with Receiver(port) as receiver:
            server.start()
            wait_for(lambda: all(receiver.delivered[i] == 1 for i in ids))
            time.sleep(1.0)
            assert receiver.delivered == Counter({i: 1 for i in ids})
            with httpx.Client(timeout=10) as client:
                for upload_id in ids:
                    handoff = client.get(f"{server.url}/uploads/{upload_id}").json()["handoff"]
                    assert handoff["state"] == "delivered"
    finally:
        server.stop()
