"""Two chunkd processes sharing Redis: a subscriber on one sees uploads served by the other."""

from __future__ import annotations

import os
import time
from pathlib import Path

from chunkd.testing.redis import running_redis
from chunkd.testing.server import ServerProcess
from tests.e2e.test_events import Collector, slow_tus_upload


def test_owner_stream_on_a_sees_an_upload_on_b(tmp_path: Path) -> None:
    with running_redis() as url:
        env = {"CHUNKD_REDIS_URL": url}
        with (
            ServerProcess(tmp_path / "a", env=env) as a,
            ServerProcess(tmp_path / "b", env=env) as b,
        ):
            collector = Collector(f"{a.url}/events")
            collector.start()
            assert collector.connected.wait(10)
            time.sleep(0.3)
            location = slow_tus_upload(b, os.urandom(1 << 20), 4, 0.3)
            upload_id = location.rsplit("/", 1)[1]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                kinds = [e["event"] for e in collector.events if e.get("upload_id") == upload_id]
                if "completed" in kinds:
                    break
                time.sleep(0.05)
            assert kinds[0] == "created" and kinds[-1] == "completed"
            assert "progress" in kinds
