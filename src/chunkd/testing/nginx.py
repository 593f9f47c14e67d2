"""A private nginx balancing round-robin over chunkd instances, for tests (Debian nginx).

Request bodies are streamed through (``proxy_request_buffering off``), as a deployment of
chunkd needs; see docs/deploy.md.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from chunkd.testing.processes import free_port, stop

CONFIG = """\
{user}daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream chunkd {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_read_timeout 300s;
        proxy_send_timeout 300s;
        location / {{ proxy_pass http://chunkd; }}
    }}
}}
"""


@contextmanager
def running_balancer(ports: Sequence[int]) -> Iterator[int]:
    """nginx on a free port, round-robin over ``127.0.0.1:<port>`` for each port given."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        raise RuntimeError("nginx is not installed: run `make test` (Debian nginx)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="chunkd-nginx-") as tmp:
        prefix = Path(tmp)
        servers = "\n".join(
            f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in ports
        )
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = prefix / "nginx.conf"
        conf.write_text(CONFIG.format(user=user, prefix=prefix, servers=servers, port=port))
        process = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError((prefix / "error.log").read_text()) from None
                    time.sleep(0.05)
            yield port
        finally:
            stop(process)
