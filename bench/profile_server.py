"""Where does a chunkd server spend its time? py-spy during one workload, summarised.

    .venv/bin/python bench/profile_server.py [--server uvicorn|granian] [--default] [--mib 1024]
        [--uploads 1]

Starts chunkd (like-for-like: ``--no-fsync --digests none`` unless ``--default``), samples it
with ``py-spy record --format raw`` (idle frames dropped, all threads) while ``--uploads``
concurrent uploads of one PATCH each, ``--mib`` MiB in all, are sent, and prints the top
frames by own samples and by inclusive samples. The raw samples are left in the system's
temporary directory as ``chunkd-profile.txt`` (replaced by the next run) for a closer look.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import BinaryIO

from cases import MIB
from loadclient import tus_upload
from servers import BIN, SPECS, running
from tus_bench import snapshot_chunkd

IDLE = ("_worker thread.py:81", "_connection_worker_thread core.py:59", "wait threading.py")


def summarise(raw: Path, top: int) -> None:
    """Own and inclusive samples per frame, for the busiest thread (the event loop) and the
    rest; frames waiting on a queue or lock are idle and dropped."""
    own: dict[str, Counter[str]] = {}
    inclusive: dict[str, Counter[str]] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        thread, *raw_frames = stack.split(";")
        frames = [f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].rstrip(")") for f in raw_frames]
        if not frames or any(idle in frame for frame in frames for idle in IDLE):
            continue
        own.setdefault(thread, Counter())[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive.setdefault(thread, Counter())[frame] += int(count)
    threads = sorted(own, key=lambda t: -sum(own[t].values()))
    for thread in threads[:3]:
        total = sum(own[thread].values())
        print(f"\n{thread}: {total} busy samples")
        for title, counter in (("own", own[thread]), ("inclusive", inclusive[thread])):
            print(f"  top {top} by {title} samples:")
            for frame, n in counter.most_common(top):
                print(f"    {100 * n / total:5.1f}%  {frame}")


async def upload_all(port: int, file: BinaryIO, size: int, uploads: int) -> None:
    each = size // uploads
    await asyncio.gather(
        *(tus_upload(port, "/files/", file, i * each, each, each) for i in range(uploads))
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    parser.add_argument("--default", action="store_true", help="fsync + sha256 (the default)")
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--uploads", type=int, default=1, help="concurrent uploads")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--native", action="store_true", help="include C frames")
    parser.add_argument("--chunkd-tree", choices=("head", "working"), default="head")
    args = parser.parse_args()
    group = "chunkd-default" if args.default else "chunkd-lfl"
    spec = next(s for s in SPECS if s.group == group and s.name.endswith(args.server))
    size = args.mib * MIB
    with tempfile.TemporaryDirectory(prefix="chunkd-profile-") as tmp:
        work = Path(tmp)
        print("chunkd under test:", snapshot_chunkd(work, args.chunkd_tree))
        source = work / "source.bin"
        with source.open("wb") as f:
            for _ in range(max(1, size // (16 * MIB))):
                f.write(os.urandom(16 * MIB))
        raw = work / "profile.txt"
        with running(spec, work / "data") as (port, proc), source.open("rb") as file:
            spy = subprocess.Popen(
                [str(BIN / "py-spy"), "record", "--pid", str(proc.pid), "--rate", "250",
                 "--format", "raw", "--threads", *(["--native"] if args.native else []),
                 "--output", str(raw)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            try:
                time.sleep(1.0)  # let py-spy attach
                start = time.perf_counter()
                asyncio.run(upload_all(port, file, size, args.uploads))
                seconds = time.perf_counter() - start
            finally:
                spy.send_signal(signal.SIGINT)
                _, err = spy.communicate(timeout=60)
        print(f"{spec.name}: {size / seconds / 1e6:.0f} MB/s under py-spy")
        if not raw.exists():
            print(err.decode(errors="replace"), file=sys.stderr)
            return 1
        summarise(raw, args.top)
        shutil.copy(raw, Path(tempfile.gettempdir()) / "chunkd-profile.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
