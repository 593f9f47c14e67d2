"""Two chunkd commits side by side on one tus workload, interleaved: is the change faster?

    .venv/bin/python bench/ab_bench.py BASE [OTHER] [--mib 1024] [--patch-mib 8] [--uploads 1]
        [--default] [--reps 3]

Each commit's ``src/`` is frozen with ``git archive`` (OTHER defaults to HEAD). Every
repetition runs both, in an order that alternates, each on a fresh ``chunkd serve`` (uvicorn;
like-for-like ``--no-fsync --digests none`` unless ``--default``) with an empty data directory.
The workload: ``--uploads`` concurrent tus uploads sharing ``--mib`` MiB, each sent as PATCHes
of ``--patch-mib`` MiB (0: one PATCH) from a source file read once into the page cache, by
the benchmarks' own load client. Reported per run: MB/s, the server's CPU seconds (user +
system of its process tree) and its peak RSS (sampled every 50 ms, as the full bench does);
then the medians and their ratio. Every stored file
is checked against its source range. For changes too small for the full bench's noise: the
same machine, minutes apart, nothing else differing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cases import MIB, source_digest, stored_digest
from loadclient import tus_upload
from monitor import TreeMonitor
from servers import SPECS, running
from tus_bench import archive_src


async def workload(port: int, source: Path, size: int, uploads: int, patch: int) -> list[str]:
    each = size // uploads
    with source.open("rb") as file:
        return await asyncio.gather(
            *(
                tus_upload(port, "/files/", file, i * each, each, patch or each)
                for i in range(uploads)
            )
        )


def verify(stored: list[Path], source: Path, each: int) -> None:
    for index, path in enumerate(stored):
        if stored_digest([path]) != (each, source_digest(source, index * each, each)):
            raise SystemExit(f"stored bytes differ from the source: {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base")
    parser.add_argument("other", nargs="?", default="HEAD")
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--patch-mib", type=int, default=8, help="0: one PATCH per upload")
    parser.add_argument("--uploads", type=int, default=1)
    parser.add_argument("--default", action="store_true", help="fsync + sha256 (the default)")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    group = "chunkd-default" if args.default else "chunkd-lfl"
    spec = next(s for s in SPECS if s.group == group and s.name.endswith("uvicorn"))
    size, each = args.mib * MIB, args.mib * MIB // args.uploads
    results: dict[str, list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="chunkd-ab-") as tmp:
        work = Path(tmp)
        trees = []
        for rev in (args.base, args.other):
            commit, src = archive_src(rev, work / f"tree-{len(trees)}")
            trees.append((commit[:10], src))
        source = work / "source.bin"
        with source.open("wb") as out:
            for _ in range(-(-size // (16 * MIB))):
                out.write(os.urandom(16 * MIB))
        with source.open("rb") as warm:
            while warm.read(16 * MIB):
                pass
        for rep in range(args.reps):
            for name, src in trees if rep % 2 == 0 else trees[::-1]:
                os.environ["PYTHONPATH"] = str(src)  # ahead of the editable install
                data = work / f"data-{name}-{rep}"
                with running(spec, data) as (port, proc), TreeMonitor(proc.pid) as monitor:
                    start = time.perf_counter()
                    paths = asyncio.run(
                        workload(port, source, size, args.uploads, args.patch_mib * MIB)
                    )
                    seconds = time.perf_counter() - start
                verify([spec.stored(data, path) for path in paths], source, each)
                shutil.rmtree(data)
                rate, cpu, peak = size / seconds / 1e6, monitor.cpu, monitor.peak / MIB
                results.setdefault(name, []).append((rate, cpu, peak))
                print(f"rep {rep} {name}: {rate:6.0f} MB/s  CPU {cpu:5.2f} s  peak {peak:5.1f} MiB")
    print(
        f"\n{args.uploads} upload(s), {args.mib} MiB, PATCHes of "
        f"{f'{args.patch_mib} MiB' if args.patch_mib else 'the whole upload'}, {spec.name}:"
    )
    medians = {}
    for name, runs in results.items():
        rate = statistics.median(r for r, _, _ in runs)
        cpu = statistics.median(c for _, c, _ in runs)
        peak = statistics.median(p for _, _, p in runs)
        medians[name] = rate
        print(
            f"  {name}: median {rate:.0f} MB/s, CPU {cpu:.2f} s, peak RSS {peak:.1f} MiB "
            f"(largest {max(p for _, _, p in runs):.1f}); runs {[round(r) for r, _, _ in runs]}"
        )
    (base, _), (other, _) = trees
    print(f"  {other} / {base}: {medians[other] / medians[base]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
