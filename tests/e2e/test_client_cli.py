"""The ``chunkd`` CLI as a user runs it, against the real server: killed mid-upload and run
again it sends only the missing parts; a file changed between runs starts over; a queue filled
while the server is down drains by itself once the server starts."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from chunkd.testing.processes import free_port
from chunkd.testing.server import ServerProcess
from tests.client.proxy import ChaosProxy
from tests.e2e.webhooks import Receiver, hook_env

pytestmark = pytest.mark.e2e

MiB = 1 << 20


def chunkd(*args: str, env: dict[str, str]) -> list[str]:
    return [sys.executable, "-m", "chunkd", *args]


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUNKD_")}
    return {**env, "CHUNKD_CLIENT_DIR": str(tmp_path / "client")}


def session_id(env: dict[str, str]) -> str | None:
    path = Path(env["CHUNKD_CLIENT_DIR"]) / "resume.sqlite3"
    if not path.exists():
        return None
    db = sqlite3.connect(path)
    try:
        row = db.execute("SELECT upload_id FROM sessions WHERE upload_id IS NOT NULL").fetchone()
    except sqlite3.OperationalError:  # the client has not created its table yet
        return None
    finally:
        db.close()
    return None if row is None else str(row[0])


def status(server: ServerProcess, upload_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{server.url}/uploads/{upload_id}").json()
    return answer


def kill_mid_upload(
    server: ServerProcess, proxy: ChaosProxy, path: Path, env: dict[str, str]
) -> str:
    """Start ``chunkd upload`` through a slow proxy and SIGKILL it after a few parts."""
    proxy.rate = 3 * MiB
    args = ["upload", str(path), "--server", proxy.url, "--part-size", "1MiB", "--parallel", "2"]
    process = subprocess.Popen(
        chunkd(*args, env=env), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            upload_id = session_id(env)
            if upload_id and status(server, upload_id)["parts_received"] >= 4:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the upload never got going")
    finally:
        process.kill()
        process.wait()
    proxy.rate = None
    return upload_id


def settled_status(server: ServerProcess, upload_id: str) -> dict[str, Any]:
    """The status once parts that were in flight at the kill have been stored or dropped."""
    last = status(server, upload_id)
    stable = 0
    while stable < 3:
        time.sleep(0.2)
        now = status(server, upload_id)
        stable = stable + 1 if now["parts_received"] == last["parts_received"] else 0
        last = now
    return last


def upload_again(proxy: ChaosProxy, path: Path, env: dict[str, str]) -> tuple[dict[str, Any], int]:
    """Run ``chunkd upload --json`` to the end; its answer and the part PUTs it sent."""
    proxy.part_puts = 0
    args = ["upload", str(path), "--server", proxy.url, "--part-size", "1MiB", "--json"]
    done = subprocess.run(
        chunkd(*args, env=env), env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), proxy.part_puts


def test_killed_mid_upload_the_cli_resumes_and_sends_only_the_missing_parts(
    server: ServerProcess, tmp_path: Path
) -> None:
    env = cli_env(tmp_path)
    path = tmp_path / "recording.wav"
    data = os.urandom(24 * MiB)
    path.write_bytes(data)
    with ChaosProxy(server.port) as proxy:
        upload_id = kill_mid_upload(server, proxy, path, env)
        before = settled_status(server, upload_id)
        assert before["state"] == "receiving" and 4 <= before["parts_received"] < 24
        missing = 24 - before["parts_received"]
        result, puts = upload_again(proxy, path, env)
    assert result["ok"] and result["resumed"] and result["id"] == upload_id, (result, upload_id)
    assert result["parts_sent"] == missing and puts == missing
    stored = httpx.get(f"{server.url}/files/{upload_id}").content
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_file_changed_between_runs_starts_over(server: ServerProcess, tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    path = tmp_path / "scan.mrc"
    path.write_bytes(os.urandom(24 * MiB))
    changed = os.urandom(24 * MiB)
    with ChaosProxy(server.port) as proxy:
        old_id = kill_mid_upload(server, proxy, path, env)
        path.write_bytes(changed)
        result, puts = upload_again(proxy, path, env)
    assert result["ok"] and not result["resumed"] and result["id"] != old_id
    assert puts == 24
    stored = httpx.get(f"{server.url}/files/{result['id']}").content
    assert stored == changed


def test_a_queue_filled_while_the_server_is_down_drains_once_it_starts(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    files = []
    for index, size in enumerate([0, 5000, 3 * MiB + 1]):
        path = tmp_path / f"take-{index}.wav"
        path.write_bytes(os.urandom(size))
        files.append(path)
    server = ServerProcess(tmp_path / "data")
    add = chunkd("queue", "add", str(files[0]), str(files[1]), "--meta", "room=3", env=env)
    subprocess.run(add, env=env, check=True, capture_output=True, timeout=30)
    add = chunkd("queue", "add", str(files[2]), "--copy", env=env)
    subprocess.run(add, env=env, check=True, capture_output=True, timeout=30)
    files[2].unlink()  # the copy in the queue is what gets uploaded

    watch = ["sync", "--watch", "--server", server.url, "--interval", "0.2"]
    syncing = subprocess.Popen(
        chunkd(*watch, env=env), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        time.sleep(1.5)  # it finds the server down and keeps trying
        assert syncing.poll() is None
        server.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listing = subprocess.run(
                chunkd("queue", "ls", "--json", env=env), env=env, check=True,
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            items = [json.loads(line) for line in listing.stdout.splitlines()]
            if all(item["status"] == "completed" for item in items):
                break
            time.sleep(0.2)
        assert [item["status"] for item in items] == ["completed"] * 3, items
        for item in items:
            stored = httpx.get(f"{server.url}/uploads/{item['upload_id']}").json()
            assert stored["state"] == "complete" and stored["size"] == item["size"]
        assert items[0]["metadata"] == {"room": "3"} and items[2]["path"] != str(files[2])
    finally:
        syncing.send_signal(signal.SIGINT)
        _, errors = syncing.communicate(timeout=15)
        server.stop()
    assert "unreachable" in errors.decode()
    stats = subprocess.run(
        chunkd("queue", "stats", "--json", env=env), env=env, check=True,
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    numbers = json.loads(stats.stdout)
    assert numbers["items"]["completed"] == 3 and numbers["copied_bytes"] == 3 * MiB + 1


def test_sync_follows_the_server_through_processing_by_its_events(tmp_path: Path) -> None:
    """The item waits for the pipeline through the upload's event stream: it is completed as
    soon as the hand-off is delivered (after two refusals), not at the next check a minute on."""
    env = cli_env(tmp_path)
    path = tmp_path / "take.wav"
    path.write_bytes(os.urandom(200_000))
    port = free_port()
    with (
        Receiver(port, failures=2) as receiver,
        ServerProcess(tmp_path / "data", env=hook_env(port)) as server,
    ):
        add = chunkd("queue", "add", str(path), env=env)
        subprocess.run(add, env=env, check=True, capture_output=True, timeout=30)
        started = time.monotonic()
        done = subprocess.run(
            chunkd("sync", "--server", server.url, "--interval", "60", env=env), env=env,
            capture_output=True, text=True, timeout=55,
        )  # fmt: skip
        took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert took < 30, took
    moves = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("1 ")]
    assert moves == ["uploading", "uploaded", "processing", "completed"], done.stderr
    assert sum(receiver.delivered.values()) == 1 and receiver.calls == 3


def test_without_a_terminal_the_cli_writes_plain_lines(
    server: ServerProcess, tmp_path: Path
) -> None:
    """A script or a log gets one plain line per file (no bars, no colour codes), and Ctrl-C
    says how to resume."""
    env = cli_env(tmp_path)
    small = tmp_path / "[take 1].wav"  # brackets: not mistaken for markup
    small.write_bytes(os.urandom(1000))
    done = subprocess.run(
        chunkd("upload", str(small), "--server", server.url, env=env),
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"✓ {small} uploaded → {server.url}/")
    assert len(done.stderr.splitlines()) == 1 and "\x1b[" not in done.stderr

    with ChaosProxy(server.port) as proxy:
        proxy.rate = 1 * MiB
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(8 * MiB))
        args = ["upload", str(big), "--server", proxy.url, "--part-size", "1MiB"]
        process = subprocess.Popen(
            chunkd(*args, env=env), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        time.sleep(2)
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 130
    assert errors.startswith("interrupted: what the server acknowledged is kept; run the same")
    assert f"chunkd upload {big}" in errors and "\x1b[" not in errors
