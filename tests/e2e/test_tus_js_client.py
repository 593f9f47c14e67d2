"""tus-js-client (Node) against the real server process: a chunked upload from a file stream,
and a parallel one that the client splits into partial uploads joined by a final upload
(concatenation extension)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from chunkd.testing.server import ServerProcess
from tests.e2e.clients import CLIENTS, MiB, assert_stored_file, write_random_file
from tests.e2e.tus import TUS

pytestmark = [pytest.mark.e2e, pytest.mark.clients]

CHUNK = 5 * MiB
SIZE = 20 * MiB + 12_345  # not a multiple of the chunk size nor of the number of parts


def run_node_upload(endpoint: str, source: Path, *args: str) -> dict[str, Any]:
    """Run ``tests/clients/upload.mjs``; its JSON report: the upload URL and the requests."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the tus-js-client tests need Node.js (v18 or later)")
    if not (CLIENTS / "node_modules" / "tus-js-client" / "package.json").is_file():
        pytest.fail(
            f"tus-js-client is not installed in {CLIENTS}: run `make test`, "
            "or `npm ci` in tests/clients"
        )
    command = [node, str(CLIENTS / "upload.mjs"), endpoint, str(source), *args]
    done = subprocess.run(
        command, cwd=CLIENTS, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"upload.mjs exited {done.returncode}:\n{done.stderr}"
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_tus_js_client_uploads_a_file_stream_in_chunks(
    server: ServerProcess, tmp_path: Path
) -> None:
    source = tmp_path / "source.bin"
    sha256 = write_random_file(source, SIZE, seed=20)
    report = run_node_upload(server.files_url, source, "--chunk-size", str(CHUNK))
    requests = report["requests"]
    posts = [r for r in requests if r["method"] == "POST"]
    assert len(posts) == 1
    assert "Upload-Concat" not in posts[0]["headers"]
    assert posts[0]["headers"]["Upload-Length"] == str(SIZE)
    patches = [r for r in requests if r["method"] == "PATCH"]
    assert [r["status"] for r in patches] == [204] * len(patches)
    assert [int(r["headers"]["Upload-Offset"]) for r in patches] == list(range(0, SIZE, CHUNK))
    with httpx.Client(timeout=30) as client:
        assert_stored_file(client, report["url"], SIZE, sha256)


def test_tus_js_client_parallel_uploads_are_concatenated(
    server: ServerProcess, tmp_path: Path
) -> None:
    source = tmp_path / "source.bin"
    sha256 = write_random_file(source, SIZE, seed=21)
    report = run_node_upload(
        server.files_url, source, "--chunk-size", str(CHUNK), "--parallel", "4"
    )
    requests = report["requests"]
    failed = [r for r in requests if r["status"] >= 300]
    assert not failed, failed
    posts = [r for r in requests if r["method"] == "POST"]
    partials = [r for r in posts if r["headers"].get("Upload-Concat") == "partial"]
    finals = [r for r in posts if r["headers"].get("Upload-Concat", "").startswith("final;")]
    assert len(partials) == 4
    assert len(finals) == 1
    assert sum(int(r["headers"]["Upload-Length"]) for r in partials) == SIZE
    part_urls = finals[0]["headers"]["Upload-Concat"][len("final;") :].split()
    assert len(part_urls) == 4
    assert {r["url"] for r in requests if r["method"] == "PATCH"} == set(part_urls)
    final_url = report["url"]
    assert final_url not in part_urls
    with httpx.Client(timeout=30) as client:
        head = client.head(final_url, headers=TUS)
        assert head.headers["Upload-Concat"] == finals[0]["headers"]["Upload-Concat"]
        assert_stored_file(client, final_url, SIZE, sha256)
