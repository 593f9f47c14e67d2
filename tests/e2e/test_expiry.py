from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from chunkd.testing.server import ServerProcess

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


def stored_files(data_dir: Path) -> list[Path]:
    return [path for path in (data_dir / "files").rglob("*") if path.is_file()]


def test_the_built_in_sweeper_removes_idle_uploads(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"CHUNKD_EXPIRY": "1s", "CHUNKD_SWEEP_INTERVAL": "0.2s"}
    with ServerProcess(data_dir, env=env) as server, httpx.Client() as client:
        idle = client.post(server.files_url, headers={**TUS, "Upload-Length": "100"})
        client.patch(
            idle.headers["Location"], content=b"x" * 40, headers={**PATCH, "Upload-Offset": "0"}
        )
        done = client.post(server.files_url, headers={**TUS, "Upload-Length": "3"})
        client.patch(
            done.headers["Location"], content=b"abc", headers={**PATCH, "Upload-Offset": "0"}
        )
        assert len(stored_files(data_dir)) == 2
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(stored_files(data_dir)) > 1:
            time.sleep(0.1)
        assert client.head(idle.headers["Location"], headers=TUS).status_code == 410
        assert client.get(done.headers["Location"]).content == b"abc"  # finished: kept
        assert len(stored_files(data_dir)) == 1


def test_chunkd_cleanup_runs_the_sweep_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with ServerProcess(data_dir, env={"CHUNKD_EXPIRY": "1s"}) as server, httpx.Client() as client:
        created = client.post(server.files_url, headers={**TUS, "Upload-Length": "8192"})
        client.patch(
            created.headers["Location"],
            content=b"y" * 4096,
            headers={**PATCH, "Upload-Offset": "0"},
        )
    time.sleep(1.2)
    result = subprocess.run(
        [sys.executable, "-m", "chunkd", "cleanup", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.startswith("expired 1 uploads, purged 0 records, reclaimed 4096 bytes")
    assert stored_files(data_dir) == []
