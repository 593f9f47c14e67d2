"""``chunkd admin`` against the real server process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from chunkd.cli.main import app
from chunkd.testing.processes import free_port
from chunkd.testing.server import ServerProcess
from tests.auth.keys import SECRET, token


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Anonymous mode: every client has the admin scope."""
    with ServerProcess(tmp_path_factory.mktemp("admin") / "data") as process:
        yield process


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Tokens required; uploads expire after a second idle, swept only on demand."""
    env = {"CHUNKD_JWT_SECRET": SECRET, "CHUNKD_EXPIRY": "1s", "CHUNKD_SWEEP_INTERVAL": "1h"}
    with ServerProcess(tmp_path_factory.mktemp("secured") / "data", env=env) as process:
        yield process


def admin(server: ServerProcess | str, *args: str, token: str | None = None) -> Result:
    url = server if isinstance(server, str) else server.url
    env = {
        "CHUNKD_SERVER": url,
        "CHUNKD_TOKEN": token,
        "CHUNKD_CLIENT_CONFIG": "/nonexistent/client.toml",
        "COLUMNS": "160",
    }
    return CliRunner().invoke(app, ["admin", *args], env=env)


def output_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def new_session(url: str, filename: str, size: int = 1000, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.post(
        f"{url}/uploads", json={"filename": filename, "size": size}, headers=headers
    )
    assert answer.status_code == 201, answer.text
    upload_id: str = answer.json()["id"]
    return upload_id


def whole(url: str, body: bytes) -> str:
    answer = httpx.post(
        f"{url}/uploads?complete=true&filename=whole.txt",
        content=body,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert answer.status_code == 201, answer.text
    upload_id: str = answer.json()["id"]
    return upload_id


def test_ls_lists_filters_and_pages(server: ServerProcess) -> None:
    sessions = [new_session(server.url, f"ls-{n}.bin") for n in range(3)]
    done = whole(server.url, b"hello world")

    table = admin(server, "ls")
    assert table.exit_code == 0, table.output
    for upload_id in [*sessions, done]:
        assert upload_id in table.stdout
    assert "receiving" in table.stdout and "complete" in table.stdout
    assert "whole.txt" in table.stdout and "ls-0.bin" in table.stdout

    listed = output_json(admin(server, "ls", "--json"))
    assert {*sessions, done} <= {u["id"] for u in listed["uploads"]}
    complete = output_json(admin(server, "ls", "--state", "complete", "--json"))
    assert done in {u["id"] for u in complete["uploads"]}
    assert all(u["state"] == "complete" for u in complete["uploads"])
    assert output_json(admin(server, "ls", "--owner", "nobody", "--json"))["uploads"] == []
    assert output_json(admin(server, "ls", "--older-than", "1h", "--json"))["uploads"] == []

    first = admin(server, "ls", "--limit", "2")
    assert first.exit_code == 0, first.output
    assert "2 uploads; more after: --after" in first.stdout
    page = output_json(admin(server, "ls", "--limit", "2", "--json"))
    assert len(page["uploads"]) == 2 and page["next"] == page["uploads"][1]["id"]
    rest = output_json(admin(server, "ls", "--limit", "2", "--after", page["next"], "--json"))
    everything = output_json(admin(server, "ls", "--limit", "2", "--all", "--json"))
    assert everything["next"] is None
    ids = [u["id"] for u in everything["uploads"]]
    assert ids == sorted(ids) and ids[:4] == [u["id"] for u in page["uploads"] + rest["uploads"]]
    assert set(ids) == {u["id"] for u in listed["uploads"]}


def test_ls_refuses_bad_options(server: ServerProcess) -> None:
    bad_age = admin(server, "ls", "--older-than", "soon")
    assert bad_age.exit_code == 2
    assert "--older-than" in bad_age.stderr
    bad_state = admin(server, "ls", "--state", "sleeping")
    assert bad_state.exit_code == 2


def test_show_gives_one_upload_in_full(server: ServerProcess) -> None:
    upload_id = new_session(server.url, "show.bin", size=3000)
    table = admin(server, "show", upload_id)
    assert table.exit_code == 0, table.output
    for expected in (upload_id, "receiving", "rest", "show.bin", "0 B of 2.9 KiB", "storage keys"):
        assert expected in table.stdout
    detail = output_json(admin(server, "show", upload_id, "--json"))
    assert detail["id"] == upload_id and detail["owner"] is None
    assert detail["storage_keys"] == ["path"]
    assert detail["part_count"] == 1 and detail["missing_parts"] == [[0, 0]]

    missing = admin(server, "show", "f" * 32)
    assert missing.exit_code == 1
    assert f"upload '{'f' * 32}' does not exist" in missing.stderr


def test_cancel_aborts_an_upload(server: ServerProcess) -> None:
    upload_id = new_session(server.url, "cancel.bin")
    result = admin(server, "cancel", upload_id)
    assert result.exit_code == 0, result.output
    assert f"cancelled {upload_id} (now aborted)" in result.stdout
    assert httpx.get(f"{server.url}/uploads/{upload_id}").status_code == 410
    again = admin(server, "cancel", upload_id)
    assert again.exit_code == 1
    assert "was terminated" in again.stderr


def test_storage_activity_and_cleanup(server: ServerProcess) -> None:
    whole(server.url, b"x" * 2048)
    table = admin(server, "storage")
    assert table.exit_code == 0, table.output
    assert "By state" in table.stdout and "By owner" in table.stdout
    assert "(anonymous)" in table.stdout and "free of" in table.stdout
    report = output_json(admin(server, "storage", "--json"))
    assert report["by_state"]["complete"]["bytes"] >= 2048
    assert report["disk"]["path"] == str(server.data_dir.resolve())
    assert 0 < report["disk"]["free"] <= report["disk"]["total"]

    activity = admin(server, "activity")
    assert activity.exit_code == 0, activity.output
    assert "last hour" in activity.stdout and "last day" in activity.stdout
    numbers = output_json(admin(server, "activity", "--json"))
    assert numbers["last_hour"]["completed"] >= 1 and numbers["last_hour"]["bytes"] >= 2048

    cleanup = admin(server, "cleanup")
    assert cleanup.exit_code == 0, cleanup.output
    assert "expired 0 uploads, purged 0 records" in cleanup.stdout


def test_cleanup_sweeps_expired_uploads_now(secured: ServerProcess) -> None:
    root = token("root", scope="admin")
    upload_id = new_session(secured.url, "stale.bin", token=token("alice"))
    time.sleep(1.2)  # idle past its one-second expiry; the sweeper only runs hourly
    report = output_json(admin(secured, "cleanup", "--json", token=root))
    assert report["expired"] >= 1
    shown = output_json(admin(secured, "show", upload_id, "--json", token=root))
    assert shown["state"] == "expired" and shown["owner"] == "alice"


def test_refusals_are_explained(secured: ServerProcess) -> None:
    user = admin(secured, "ls", token=token("alice"))
    assert user.exit_code == 1
    assert user.stderr.strip() == "chunkd: this token lacks the admin scope"
    nobody = admin(secured, "storage")
    assert nobody.exit_code == 1
    assert "wants a token with the admin scope" in nobody.stderr
    forged = admin(secured, "ls", token=token("root", scope="admin", key="x" * 40))
    assert forged.exit_code == 1
    assert "refused the token" in forged.stderr
    assert admin(secured, "ls", token=token("root", scope="admin upload")).exit_code == 0


def test_unreachable_server() -> None:
    result = admin(f"http://127.0.0.1:{free_port()}", "ls")
    assert result.exit_code == 1
    assert "cannot reach http://127.0.0.1:" in result.stderr


def test_the_chunkd_command_runs_admin(server: ServerProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chunkd", "admin", "ls", "--json", "--server", server.url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "uploads" in json.loads(result.stdout)
