"""Where does a chunkd server spend its time? py-spy during one workload, summarised.

    .venv/bin/python bench/profile_server.py [--server uvicorn|granian] [--default] [--mib 1024]

Starts chunkd (like-for-like: ``--no-fsync --digests none`` unless ``--default``), samples it
with ``py-spy record --format raw`` (idle frames dropped, all threads) while one PATCH of
``--mib`` MiB is uploaded, and prints the top frames by own samples and by inclusive samples.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from cases import MIB
from loadclient import tus_upload
from servers import BIN, SPECS, running
from tus_bench import snapshot_chunkd


def summarise(raw: Path, top: int) -> None:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = [f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].rstrip(")") for f in
                  stack.split(";")[1:]]  # fmt: skip
        n = int(count)
        total += n
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    print(f"\n{total} samples (all threads, idle excluded)")
    for title, counter in (("own", own), ("inclusive", inclusive)):
        print(f"\ntop {top} frames by {title} samples:")
        for frame, n in counter.most_common(top):
            print(f"  {100 * n / max(total, 1):5.1f}%  {frame}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    parser.add_argument("--default", action="store_true", help="fsync + sha256 (the default)")
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--top", type=int, default=25)
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
                 "--format", "raw", "--threads", "--output", str(raw)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            try:
                time.sleep(1.0)  # let py-spy attach
                start = time.perf_counter()
                asyncio.run(tus_upload(port, "/files/", file, 0, size, size))
                seconds = time.perf_counter() - start
            finally:
                spy.send_signal(signal.SIGINT)
                _, err = spy.communicate(timeout=60)
        print(f"{spec.name}: {size / seconds / 1e6:.0f} MB/s under py-spy")
        if not raw.exists():
            print(err.decode(errors="replace"), file=sys.stderr)
            return 1
        summarise(raw, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
