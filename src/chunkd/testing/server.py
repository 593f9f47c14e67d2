"""Run the real ``chunkd serve`` process on a free loopback port, and stop or kill it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from chunkd.testing.processes import free_port, stop


class ServerProcess:
    """``with ServerProcess(data_dir) as server: ... server.url ...``

    ``kill()`` sends SIGKILL (no clean-up at all); ``start()`` again restarts on the same port
    and data directory, as an operator's supervisor would.

    ``args`` are extra ``chunkd serve`` flags. Inherited ``CHUNKD_*`` variables are dropped so
    the caller's shell cannot change the server under test; ``env`` sets variables explicitly
    (e.g. ``{"CHUNKD_IDLE_TIMEOUT": "1s"}`` for settings without a flag).
    """

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.args = args
        self.env = dict(env or {})
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def files_url(self) -> str:
        return f"{self.url}/files/"

    def start(self, timeout: float = 20.0) -> None:
        command = [
            sys.executable, "-m", "chunkd", "serve",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--data-dir", str(self.data_dir), "--log-level", "warning", *self.args,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHUNKD_")}
        env.update(self.env)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chunkd exited at start:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"chunkd did not become ready:\n{self.log_path.read_text()}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None:
            return
        stop(self.process, timeout=timeout)
        self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
