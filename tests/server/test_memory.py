"""The server keeps freed heap memory for reuse: bursts of body-sized blocks fault once."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# 32 body chunks of 256 KiB in flight, all let go, a hundred times over
_BURSTS = """
import os, resource, sys
from chunkd.server.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
chunk = os.urandom(256 * 1024)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    held = [bytes(bytearray(chunk)) for _ in range(32)]
    del held
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _BURSTS, mode], check=True, capture_output=True, text=True
    )
    return int(out.stdout)


@glibc
def test_bursts_of_blocks_reuse_the_heap_instead_of_faulting_fresh_pages() -> None:
    default, kept = _faults("default"), _faults("keep")
    # glibc's defaults trim the freed burst and fault all 8 MiB in again each time
    assert default > 100 * 8 * 1024 * 1024 // 4096 // 2
    assert kept < default // 10


def test_the_server_sets_it_before_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    from chunkd.server import runner
    from chunkd.settings import Settings

    calls: list[str] = []
    monkeypatch.setattr(runner.logs, "configure", lambda *args: None)
    monkeypatch.setattr(runner, "keep_freed_memory", lambda: calls.append("keep") or True)
    monkeypatch.setattr(runner, "run_granian", lambda settings: calls.append("granian"))
    monkeypatch.setattr(runner, "run_uvicorn", lambda settings: calls.append("uvicorn"))
    runner.run(Settings(asgi_server="granian"))
    runner.run(Settings(asgi_server="uvicorn"))
    assert calls == ["keep", "granian", "keep", "uvicorn"]
