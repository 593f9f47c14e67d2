"""Live events during real uploads, over SSE and WebSocket, from the real server process."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
from websockets.sync.client import connect

from chunkd.testing.server import ServerProcess

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


def sse_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    kind = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[len("event: ") :]
        elif line.startswith("data: ") and kind is not None:
            yield {"event": kind, **json.loads(line[len("data: ") :])}


def slow_tus_upload(server: ServerProcess, data: bytes, pieces: int, pause: float) -> str:
    with httpx.Client(timeout=30) as client:
        created = client.post(server.files_url, headers={**TUS, "Upload-Length": str(len(data))})
        location = created.headers["Location"]
        step = len(data) // pieces
        for offset in range(0, len(data), step):
            client.patch(location, content=data[offset : offset + step],
                         headers={**PATCH, "Upload-Offset": str(offset)})  # fmt: skip
            time.sleep(pause)
    return location


class Collector(threading.Thread):
    """Reads one SSE stream to its end in the background."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.events: list[dict[str, Any]] = []
        self.connected = threading.Event()

    def run(self) -> None:
        try:
            with httpx.Client(timeout=60) as client, client.stream("GET", self.url) as response:
                self.connected.set()
                for event in sse_events(response):
                    self.events.append(event)
        except httpx.HTTPError:
            pass  # an endless stream ends when the server stops


def test_sse_shows_state_first_then_monotonic_progress_then_completed(
    server: ServerProcess,
) -> None:
    data = os.urandom(8 << 20)
    with httpx.Client(timeout=30) as client:
        created = client.post(server.files_url, headers={**TUS, "Upload-Length": str(len(data))})
        location = created.headers["Location"]
        upload_id = location.rsplit("/", 1)[1]
        collector = Collector(f"{server.url}/uploads/{upload_id}/events")
        collector.start()
        assert collector.connected.wait(10)
        step = len(data) // 16
        for offset in range(0, len(data), step):
            client.patch(location, content=data[offset : offset + step],
                         headers={**PATCH, "Upload-Offset": str(offset)})  # fmt: skip
            time.sleep(0.15)
    collector.join(20)
    assert not collector.is_alive(), "the stream did not end after the upload completed"
    events = collector.events
    assert events[0]["event"] == "state" and events[0]["state"] == "receiving"
    progress = [e["bytes_received"] for e in events if e["event"] == "progress"]
    assert len(progress) >= 5
    assert progress == sorted(progress)
    assert events[-1]["event"] == "completed"
    assert events[-1]["size"] == len(data)
    assert len(events[-1]["digests"]["sha256"]) == 64


def test_websocket_and_a_late_subscriber(server: ServerProcess) -> None:
    data = os.urandom(2 << 20)
    with httpx.Client(timeout=30) as client:
        spec = {"filename": "a", "size": len(data), "part_size": 1 << 20}
        session = client.post(f"{server.url}/uploads", json=spec).json()
        ws_url = f"ws://127.0.0.1:{server.port}/uploads/{session['id']}/ws"
        with connect(ws_url, open_timeout=10) as socket:
            first = json.loads(socket.recv(10))
            assert first["type"] == "state" and first["missing_parts"] == [[0, 1]]
            for n in range(2):
                part = data[n << 20 : (n + 1) << 20]
                client.put(f"{server.url}/uploads/{session['id']}/parts/{n}", content=part)
            client.post(f"{server.url}/uploads/{session['id']}/complete")
            kinds = []
            while True:
                message = json.loads(socket.recv(10))
                kinds.append(message["type"])
                if message["type"] == "completed":
                    break
        assert "verifying" in kinds
        # subscribing after the end: the current state, then the stream closes at once
        with client.stream("GET", f"{server.url}/uploads/{session['id']}/events") as late:
            events = list(sse_events(late))
        assert [e["event"] for e in events] == ["state"]
        assert events[0]["state"] == "complete"


def test_owner_stream_sees_every_upload(server: ServerProcess) -> None:
    collector = Collector(f"{server.url}/events")
    collector.start()
    assert collector.connected.wait(10)
    time.sleep(0.2)
    first = slow_tus_upload(server, os.urandom(100_000), 1, 0)
    second = slow_tus_upload(server, os.urandom(100_000), 1, 0)
    deadline = time.monotonic() + 10
    ids = {first.rsplit("/", 1)[1], second.rsplit("/", 1)[1]}
    while time.monotonic() < deadline:
        done = {e["upload_id"] for e in collector.events if e["event"] == "completed"}
        if ids <= done:
            break
        time.sleep(0.05)
    assert ids <= {e["upload_id"] for e in collector.events if e["event"] == "completed"}
    assert {e["upload_id"] for e in collector.events if e["event"] == "created"} >= ids
