"""SIGTERM while bodies are arriving: in-flight requests save what they received, the
server exits promptly, and nothing acknowledged is lost."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from chunkd.testing.server import ServerProcess
from tests.e2e.tus import RawPatch

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.mark.parametrize("engine", ["granian", "uvicorn"])
def test_sigterm_saves_in_flight_bodies_and_exits(tmp_path: Path, engine: str) -> None:
    server = ServerProcess(tmp_path / "data", "--server", engine)
    server.start()
    try:
        with httpx.Client(timeout=10) as client:
            length = 4 << 20
            location = client.post(
                server.files_url, headers={**TUS, "Upload-Length": str(length)}
            ).headers["Location"]
            events = client.build_request("GET", f"{server.url}/events")
            stream = client.send(events, stream=True)  # an endless event stream, open
            patch = RawPatch(location, 0, length)
            sent = os.urandom(1 << 20)
            patch.send(sent)
            time.sleep(0.5)
            assert server.process is not None
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            answer = patch.response(10)
            server.process.wait(20)
            took = time.monotonic() - started
            stream.close()
            patch.cut()
        assert answer is not None and answer.status == 204
        assert answer.headers["upload-offset"] == str(len(sent))
        assert took < 10, f"shutdown took {took:.1f} s"
        server.process = None
        server.start()
        with httpx.Client(timeout=10) as client:
            head = client.head(location, headers=TUS)
            assert head.headers["Upload-Offset"] == str(len(sent))
    finally:
        server.stop()
