"""tuspy, the Python tus client, against the real server process: a large upload in chunks,
and a resume after the client process itself was killed with SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tusclient.client import TusClient

from chunkd.testing.server import ServerProcess
from tests.e2e.clients import CLIENTS, MiB, assert_stored_file, write_random_file
from tests.e2e.tus import offset_of

pytestmark = [pytest.mark.e2e, pytest.mark.clients]

CHUNK = 5 * MiB


def test_tuspy_uploads_64_mib_in_5_mib_chunks(server: ServerProcess, tmp_path: Path) -> None:
    size = 64 * MiB
    source = tmp_path / "source.bin"
    sha256 = write_random_file(source, size, seed=64)
    # A stream we own and close: given a path, tuspy opens the file anew for every chunk and
    # never closes it (ResourceWarnings, which this suite turns into errors).
    with source.open("rb") as stream:
        uploader = TusClient(server.files_url).uploader(
            file_stream=stream, chunk_size=CHUNK, metadata={"filename": "source.bin"}
        )
        offsets = []  # tuspy's own upload() loop, watching each acknowledged offset
        while uploader.offset < size:
            uploader.upload_chunk()  # the first call creates the upload (POST)
            offsets.append(uploader.offset)
    assert uploader.url is not None
    # Every chunk was acknowledged whole: the server never answered a shorter offset.
    assert offsets == [min(size, (n + 1) * CHUNK) for n in range(-(-size // CHUNK))]
    with httpx.Client(timeout=30) as client:
        assert_stored_file(client, uploader.url, size, sha256)


def settled_offset(client: httpx.Client, location: str, timeout: float = 5.0) -> int:
    """The server's offset once it stops moving (a killed client's PATCH may still be ending)."""
    deadline = time.monotonic() + timeout
    previous = offset_of(client, location)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        current = offset_of(client, location)
        if current == previous:
            return current
        previous = current
    raise AssertionError(f"the offset of {location} kept moving for {timeout} s")


def test_tuspy_resumes_after_its_process_is_killed(server: ServerProcess, tmp_path: Path) -> None:
    size = 40 * MiB
    source = tmp_path / "source.bin"
    sha256 = write_random_file(source, size, seed=40)
    command = [
        sys.executable, str(CLIENTS / "tuspy_upload.py"),
        server.files_url, str(source), str(tmp_path / "tus-urls.json"),
        "--chunk-size", str(CHUNK),
    ]  # fmt: skip

    with httpx.Client(timeout=10) as client:
        # First run: throttled (a pause after each chunk), killed once the server has some of it.
        with subprocess.Popen(
            [*command, "--delay", "0.3"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as first:
            assert first.stdout is not None
            created = first.stdout.readline().split()
            if not created or created[0] != "created":
                first.kill()
                _, errors = first.communicate()
                pytest.fail(f"tuspy_upload.py did not create an upload: {created!r}\n{errors}")
            location = created[1]
            deadline = time.monotonic() + 10
            seen = offset_of(client, location)
            while seen == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
                seen = offset_of(client, location)
            first.send_signal(signal.SIGKILL)
            output, errors = first.communicate()
        assert first.returncode == -signal.SIGKILL, (first.returncode, errors)
        assert "done" not in output, "the first run finished before it could be killed"
        assert 0 < seen < size, f"offset {seen} when the client was killed"

        acknowledged = settled_offset(client, location)
        assert seen <= acknowledged < size

        # Second run, same command: tuspy finds the URL in its store and asks the server.
        second = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode == 0, second.stderr
        events = [line.split() for line in second.stdout.splitlines()]
        assert events[0] == ["resumed", location, str(acknowledged)], events[0]
        patches = [int(event[1]) for event in events if event[0] == "patch"]
        assert patches, events
        assert patches[0] == acknowledged > 0, "the second run did not resume where it stopped"
        assert events[-1] == ["done", location]
        assert_stored_file(client, location, size, sha256)
