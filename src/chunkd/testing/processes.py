"""What the private test servers (chunkd, PostgreSQL, Redis, clamd, moto, nginx) share: a free
loopback port, and stopping a process politely, then firmly."""

from __future__ import annotations

import signal
import socket
import subprocess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(
    process: subprocess.Popen[bytes], *, how: int = signal.SIGTERM, timeout: float = 10.0
) -> None:
    """Send ``how`` and wait up to ``timeout`` seconds; kill the process if it is still there."""
    if process.poll() is None:
        process.send_signal(how)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
