"""Helpers for running third-party tus clients against the real server: source files, the
clients' directory, and checking what the server stored."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import httpx

from tests.e2e.tus import TUS

CLIENTS = Path(__file__).resolve().parent.parent / "clients"
MiB = 1024 * 1024


def write_random_file(path: Path, size: int, seed: int) -> str:
    """Write ``size`` pseudo-random bytes to ``path`` and return their sha256 hex digest."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            piece = rng.randbytes(min(left, 8 * MiB))
            digest.update(piece)
            out.write(piece)
            left -= len(piece)
    return digest.hexdigest()


def assert_stored_file(client: httpx.Client, location: str, size: int, sha256: str) -> None:
    """The finished upload at ``location`` is complete and byte-identical to the source."""
    head = client.head(location, headers=TUS)
    assert head.status_code == 200, head.status_code
    assert head.headers["Upload-Offset"] == str(size)
    assert head.headers["Upload-Length"] == str(size)
    digest = hashlib.sha256()
    received = 0
    with client.stream("GET", location) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["ETag"] == f'"{sha256}"'
        for piece in answer.iter_bytes():
            digest.update(piece)
            received += len(piece)
    assert received == size
    assert digest.hexdigest() == sha256
