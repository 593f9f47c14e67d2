"""A private PostgreSQL server for tests: its own data directory, port and socket, then gone.

``running_postgres()`` runs ``initdb`` into a temporary directory and starts ``postgres`` in
the foreground on a free loopback port, with its unix socket in that directory and ``fsync``
off (test data need not survive a power cut), waits until it accepts connections, yields a
:class:`PostgresServer` and stops the server by its PID on exit (SIGINT: PostgreSQL's "fast"
shutdown), then removes the directory. The Debian package ``postgresql`` provides the
binaries; ``make test`` installs it when missing. No system service, no cluster config.

PostgreSQL refuses to run as root. When the tests run as root, the server runs as the
unprivileged ``postgres`` system user (the Debian package creates it): the temporary
directory is handed to that user and the processes are started with ``user=``, so the PID we
hold is the server's own, not that of a wrapper like ``runuser``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chunkd.testing.processes import free_port, stop

__all__ = ["PostgresServer", "find_postgres_bin", "running_postgres"]

SUPERUSER = "chunkd"


def find_postgres_bin() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, newest major version first."""
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        folder = Path(os.path.realpath(pg_ctl)).parent
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder

    def major(path: str) -> int:
        part = Path(path).parts[-3]
        return int(part) if part.isdigit() else 0

    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=major)[::-1]:
        folder = Path(candidate).parent
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    return None


@dataclass(frozen=True, slots=True)
class PostgresServer:
    host: str
    port: int
    pid: int
    directory: Path
    user: str = SUPERUSER

    @property
    def socket_dir(self) -> Path:
        return self.directory / "run"

    def dsn(self, database: str = "postgres") -> str:
        """A DSN for ``database`` over TCP on loopback (trust authentication)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def log(self) -> str:
        path = self.directory / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def new_database_name(self) -> str:
        return f"t_{secrets.token_hex(8)}"


def _run_as() -> str | None:
    """The user to run PostgreSQL as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(
            "PostgreSQL cannot run as root and there is no 'postgres' user: install the "
            "Debian package postgresql (it creates one) or run the tests as another user"
        ) from None
    return "postgres"


@contextmanager
def running_postgres(
    *, bin_dir: Path | None = None, start_timeout: float = 60.0, max_connections: int = 200
) -> Iterator[PostgresServer]:
    """Run a private PostgreSQL for the duration of the block."""
    folder = bin_dir or find_postgres_bin()
    if folder is None:
        raise RuntimeError(
            "PostgreSQL is not installed: run `make test` (it installs the Debian package "
            "postgresql) or `apt-get install --no-install-recommends postgresql`"
        )
    user = _run_as()
    # A short base path: the unix socket path must fit in 107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="chunkd-pg-"))
    try:
        data, run = directory / "data", directory / "run"
        run.mkdir()
        if user is not None:
            owner = pwd.getpwnam(user)
            for path in (directory, run):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        with open(directory / "initdb.log", "wb") as out:
            done = subprocess.run(
                [
                    str(folder / "initdb"),
                    "--pgdata",
                    str(data),
                    "--username",
                    SUPERUSER,
                    "--auth",
                    "trust",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                    "--no-sync",
                    "--no-instructions",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=directory,
                user=user,
                check=False,
            )
        if done.returncode != 0:
            raise RuntimeError(
                f"initdb failed with status {done.returncode}:\n"
                + (directory / "initdb.log").read_text(errors="replace")
            )
        process = _start(folder, data, run, directory, user, start_timeout, max_connections)
        try:
            yield PostgresServer("127.0.0.1", process[1], process[0].pid, directory)
        finally:
            _stop(process[0])
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _start(
    folder: Path,
    data: Path,
    run: Path,
    directory: Path,
    user: str | None,
    timeout: float,
    max_connections: int,
) -> tuple[subprocess.Popen[bytes], int]:
    for _ in range(5):  # a free port can be taken by someone else before postgres binds it
        port = free_port()
        log = directory / "postgres.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [
                    str(folder / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-k",
                    str(run),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    f"max_connections={max_connections}",
                    "-c",
                    "shared_buffers=32MB",
                    "-c",
                    "log_min_messages=warning",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=directory,
                user=user,
                start_new_session=True,  # a Ctrl-C of the test run is ours to forward, not its
            )
        if _wait_ready(process, data, timeout):
            return process, port
        if "could not bind" not in log.read_text(errors="replace"):
            _stop(process)
            raise RuntimeError(
                "PostgreSQL did not start:\n" + "\n".join(log.read_text().splitlines()[-20:])
            )
    raise RuntimeError("PostgreSQL found no free port to listen on")


def _wait_ready(process: subprocess.Popen[bytes], data: Path, timeout: float) -> bool:
    """Wait until ``postmaster.pid`` says ``ready``; ``False`` if the server exited first."""
    deadline = time.monotonic() + timeout
    pid_file = data / "postmaster.pid"
    while True:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            lines = pid_file.read_text().splitlines()
            # line 8 is the postmaster's status: starting, ready, stopping, standby
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return True
        if time.monotonic() > deadline:
            _stop(process)
            raise RuntimeError(f"PostgreSQL was not ready within {timeout} s")
        time.sleep(0.02)


def _stop(process: subprocess.Popen[bytes]) -> None:
    stop(process, how=signal.SIGINT, timeout=20)  # "fast": end sessions, checkpoint, exit
