"""The servers under test: how to start each on a free loopback port, and stop it.

Every server is started in its own session (process group) and stopped by that group's id,
always, from ``finally``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chunkd.testing.processes import free_port

BENCH = Path(__file__).resolve().parent
PEERS = BENCH / "peers"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Spec:
    """A server: ``command(port, data_dir)`` starts it; ``stored(data_dir, url_path)`` finds
    an upload's bytes; ``kind`` is "tus" (POST + PATCH) or "put" (nginx)."""

    name: str
    group: str
    command: Callable[[int, Path], list[str]]
    stored: Callable[[Path, str], Path]
    kind: str = "tus"
    env: Callable[[Path], dict[str, str]] | None = None
    workers: int = 1  # chunkd --workers: timing starts once every worker is serving


def _chunkd(server: str, *extra: str) -> Callable[[int, Path], list[str]]:
    def command(port: int, data: Path) -> list[str]:
        return [
            str(BIN / "chunkd"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--log-level",
            "warning",
            "--server",
            server,
            *extra,
        ]

    return command


def _chunkd_file(data: Path, url_path: str) -> Path:
    upload_id = url_path.rstrip("/").rsplit("/", 1)[-1]
    return data / "files" / upload_id[:2] / upload_id


def _flat_file(data: Path, url_path: str) -> Path:
    return data / url_path.rstrip("/").rsplit("/", 1)[-1]


def _nginx_file(data: Path, url_path: str) -> Path:
    return data / "root" / url_path.lstrip("/")


def _tuspy_env(data: Path) -> dict[str, str]:
    return {"TUSPY_FILES_DIR": str(data)}


def _tuspy_uvicorn(port: int, data: Path) -> list[str]:
    return [
        str(BIN / "uvicorn"),
        "tuspy_app:app",
        "--app-dir",
        str(PEERS),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--http",
        "httptools",
        "--loop",
        "uvloop",
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def _tuspy_granian(port: int, data: Path) -> list[str]:
    return [
        str(BIN / "granian"),
        "--interface",
        "asgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--workers",
        "1",
        "--no-ws",
        "--log-level",
        "warning",
        "--working-dir",
        str(PEERS),
        "tuspy_app:app",
    ]


def _tus_node(port: int, data: Path) -> list[str]:
    return ["node", str(PEERS / "tus_node_server.mjs"), str(port), str(data)]


NGINX_CONF = """\
{user}worker_processes auto;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {data}/tmp;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:{port};
        root {data}/root;
        location /upload/ {{
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw;
        }}
    }}
}}
"""


def _nginx(port: int, data: Path) -> list[str]:
    """A private nginx: own prefix and config under ``data``; the dav module writes each PUT
    body to a temp file on the same disk and renames it into place (no fsync)."""
    prefix = data / "nginx"
    for sub in (prefix, data / "tmp", data / "root" / "upload"):
        sub.mkdir(parents=True, exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, prefix=prefix, data=data, port=port))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]


SPECS: list[Spec] = [
    Spec("chunkd default / uvicorn", "chunkd-default", _chunkd("uvicorn"), _chunkd_file),
    Spec("chunkd default / granian", "chunkd-default", _chunkd("granian"), _chunkd_file),
    Spec(
        "chunkd no-fsync,no-digest / uvicorn",
        "chunkd-lfl",
        _chunkd("uvicorn", "--no-fsync", "--digests", "none"),
        _chunkd_file,
    ),
    Spec(
        "chunkd no-fsync,no-digest / granian",
        "chunkd-lfl",
        _chunkd("granian", "--no-fsync", "--digests", "none"),
        _chunkd_file,
    ),
    Spec(
        "chunkd default / uvicorn, 2 workers",
        "chunkd-default",
        _chunkd("uvicorn", "--workers", "2"),
        _chunkd_file,
        workers=2,
    ),
    Spec(
        "chunkd no-fsync,no-digest / uvicorn, 2 workers",
        "chunkd-lfl",
        _chunkd("uvicorn", "--workers", "2", "--no-fsync", "--digests", "none"),
        _chunkd_file,
        workers=2,
    ),
    Spec("@tus/server + file-store", "tus-node", _tus_node, _flat_file),
    Spec("tuspyserver / uvicorn", "tuspy", _tuspy_uvicorn, _flat_file, env=_tuspy_env),
    Spec("tuspyserver / granian", "tuspy", _tuspy_granian, _flat_file, env=_tuspy_env),
    Spec("nginx dav PUT (no fsync)", "nginx", _nginx, _nginx_file, kind="put"),
]


def _wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout}s: {log.read_text()}")


def _wait_workers(peers: Path, count: int, timeout: float) -> None:
    """The supervisor listens before its workers serve: wait until each has registered
    (``data/run/peers``, written as a worker starts its app) and a moment more."""
    if count <= 1:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if peers.is_dir() and len(list(peers.iterdir())) >= count:
            time.sleep(0.5)
            return
        time.sleep(0.05)
    raise RuntimeError(f"{count} workers did not start within {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's own process group; SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def running(spec: Spec, data: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Start ``spec`` on a free port with ``data`` as its directory; always stop it after."""
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, **(spec.env(data) if spec.env else {})}
    log = data.parent / f"{data.name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            spec.command(port, data),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=PEERS,
            start_new_session=True,
        )
    try:
        _wait_listening(proc, port, log, 30.0)
        _wait_workers(data / "run" / "peers", spec.workers, 30.0)
        yield port, proc
    finally:
        stop(proc)
