"""A private S3-compatible server for tests: moto in server mode, on a free loopback port.

``running_moto()`` starts ``python -m moto.server`` (PyPI ``moto[server]``, in the ``test``
extra) as a child process, waits until it answers, and stops it by its PID on exit. Moto
enforces S3's minimum part size at ``CompleteMultipartUpload``; ``min_part_size`` lowers it
(moto's ``S3_UPLOAD_PART_MIN_SIZE``) so tests can make thousands of parts from little data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from chunkd.testing.processes import free_port, stop

__all__ = ["MotoServer", "running_moto"]

ACCESS_KEY = "testing"
SECRET_KEY = "testing"  # moto accepts any credentials; these only satisfy the SDK
REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class MotoServer:
    endpoint: str
    pid: int
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    def chunkd_env(self, bucket: str) -> dict[str, str]:
        """The settings that point a chunkd server at ``bucket`` on this server."""
        return {
            "CHUNKD_STORAGE": "s3",
            "CHUNKD_S3_ENDPOINT": self.endpoint,
            "CHUNKD_S3_BUCKET": bucket,
            "CHUNKD_S3_REGION": self.region,
            "CHUNKD_S3_ACCESS_KEY": self.access_key,
            "CHUNKD_S3_SECRET_KEY": self.secret_key,
        }

    def create_bucket(self, name: str) -> None:
        import boto3

        client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()


@contextmanager
def running_moto(*, min_part_size: int = 5 * 1024 * 1024) -> Iterator[MotoServer]:
    port = free_port()
    env = {**os.environ, "S3_UPLOAD_PART_MIN_SIZE": str(min_part_size)}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto did not start") from None
                time.sleep(0.1)
        yield MotoServer(endpoint, process.pid)
    finally:
        stop(process)
