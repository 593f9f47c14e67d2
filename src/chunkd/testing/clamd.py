"""A private ClamAV daemon for tests: its own config, socket and one-signature database.

``running_clamd()`` starts ``clamd`` (Debian package ``clamav-daemon``; ``make test`` installs
it) in the foreground in a temporary directory, with a database holding only a signature for
the EICAR anti-virus test file, waits until it answers PING, and stops it by its PID on exit.
No freshclam, no system service, no network: with one signature it starts in about a second.

The EICAR test string is public and harmless, but scanners flag files containing it, so it is
only ever assembled in memory (``eicar()``), never stored in the repository as one piece.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chunkd.testing.processes import stop

__all__ = ["EICAR_SIGNATURE", "ClamdProcess", "eicar", "find_clamd", "running_clamd"]

EICAR_SIGNATURE = "Chunkd.Test.EICAR"
"""The name of the one signature; clamd reports it with ``.UNOFFICIAL`` appended."""


def eicar() -> bytes:
    """The 68-byte EICAR anti-virus test file, assembled from parts."""
    parts = (
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
        "EICAR-STANDARD-",
        "ANTIVIRUS-",
        "TEST-FILE!$H+H*",
    )
    return "".join(parts).encode("ascii")


def find_clamd() -> str | None:
    found = shutil.which("clamd")
    if found:
        return found
    for candidate in ("/usr/sbin/clamd", "/usr/local/sbin/clamd"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass(frozen=True, slots=True)
class ClamdProcess:
    socket_path: str
    pid: int
    directory: Path
    signature: str = EICAR_SIGNATURE

    @property
    def log(self) -> str:
        path = self.directory / "clamd.log"
        return path.read_text(errors="replace") if path.exists() else ""


_CONFIG = """\
Foreground yes
LocalSocket {socket}
LocalSocketMode 600
DatabaseDirectory {db}
TemporaryDirectory {tmp}
LogFile {log}
LogTime yes
LogVerbose no
PidFile {pid}
MaxThreads 2
MaxQueue 8
IdleTimeout 30
ReadTimeout 30
CommandReadTimeout 10
SendBufTimeout 500
StreamMaxLength 64M
MaxScanSize 64M
MaxFileSize 64M
MaxRecursion 5
MaxFiles 100
SelfCheck 0
ConcurrentDatabaseReload no
Bytecode no
DetectPUA no
ExitOnOOM yes
"""


@contextmanager
def running_clamd(
    *, binary: str | None = None, start_timeout: float = 60.0
) -> Iterator[ClamdProcess]:
    """Run a private clamd for the duration of the block."""
    clamd = binary or find_clamd()
    if clamd is None:
        raise RuntimeError(
            "clamd is not installed: run `make test` (it installs the Debian package "
            "clamav-daemon) or `apt-get install --no-install-recommends clamav-daemon`"
        )
    # A short base path: a unix socket path must fit in 107 bytes.
    with tempfile.TemporaryDirectory(prefix="chunkd-clamd-") as tmp:
        directory = Path(tmp)
        db, scratch = directory / "db", directory / "tmp"
        db.mkdir()
        scratch.mkdir()
        # One body-based signature: name, target type 0 (any file), any offset, hex bytes.
        (db / "chunkd-test.ndb").write_text(f"{EICAR_SIGNATURE}:0:*:{eicar().hex()}\n")
        socket_path = str(directory / "clamd.sock")
        config = directory / "clamd.conf"
        config.write_text(
            _CONFIG.format(
                socket=socket_path,
                db=db,
                tmp=scratch,
                log=directory / "clamd.log",
                pid=directory / "clamd.pid",
            )
        )
        with open(directory / "clamd.out", "wb") as out:
            process = subprocess.Popen(
                [clamd, f"--config-file={config}"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=directory,
            )
        try:
            _wait_for_pong(process, socket_path, directory, start_timeout)
            yield ClamdProcess(socket_path, process.pid, directory)
        finally:
            _stop(process)


def _wait_for_pong(
    process: subprocess.Popen[bytes], socket_path: str, directory: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"clamd exited with status {process.returncode} while starting:\n"
                + _tail(directory)
            )
        if _ping(socket_path):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"clamd did not answer PING within {timeout} s:\n" + _tail(directory)
            )
        time.sleep(0.05)


def _ping(socket_path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(socket_path)
            sock.sendall(b"zPING\0")
            return sock.recv(64).rstrip(b"\0") == b"PONG"
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    stop(process)  # SIGTERM to this PID: clamd shuts down cleanly


def _tail(directory: Path) -> str:
    lines: list[str] = []
    for name in ("clamd.out", "clamd.log"):
        path = directory / name
        if path.exists():
            lines += path.read_text(errors="replace").splitlines()[-20:]
    return "\n".join(lines)
