"""Throughput of 1 and 3 chunkd instances behind nginx, sharing PostgreSQL, Redis and an
S3-compatible store (moto), in one run.

    .venv/bin/python bench/cluster_bench.py [--uploads 8] [--size-mib 64] [--reps 2] [--out FILE]

Each repetition starts the shared services once, then for 1 and for 3 instances (alternating)
sends ``--uploads`` concurrent tus uploads of ``--size-mib`` through nginx (8 MiB PATCHes) and
records MB/s; every upload's sha256 is checked against the source.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from bench.loadclient import tus_upload
from bench.sections import write_section

from chunkd.testing.nginx import running_balancer
from chunkd.testing.postgres import running_postgres
from chunkd.testing.redis import running_redis
from chunkd.testing.s3 import running_moto
from chunkd.testing.server import ServerProcess

MiB = 1 << 20


def run(
    env: dict[str, str], tmp: Path, instances: int, source: Path, uploads: int, size: int
) -> float:
    with ExitStack() as stack:
        servers = [
            ServerProcess(tmp / f"n{instances}-{i}-{time.monotonic_ns()}", env=env)
            for i in range(instances)
        ]
        for server in servers:
            server.start()
            stack.callback(server.stop)
        port = stack.enter_context(running_balancer([s.port for s in servers]))

        async def send() -> list[str]:
            with source.open("rb") as file:
                return await asyncio.gather(
                    *(
                        tus_upload(port, "/files/", file, i * size, size, 8 * MiB)
                        for i in range(uploads)
                    )
                )

        started = time.perf_counter()
        paths = asyncio.run(send())
        seconds = time.perf_counter() - started
        with httpx.Client(timeout=60) as client, source.open("rb") as file:
            for i, path in enumerate(paths):
                file.seek(i * size)
                expected = hashlib.sha256(file.read(size)).hexdigest()
                status = client.get(
                    f"http://127.0.0.1:{port}/uploads/{path.rsplit('/', 1)[1]}"
                ).json()
                assert status["digests"]["sha256"] == expected, status
        return uploads * size / seconds / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    size = args.size_mib * MiB
    results: dict[int, list[float]] = {1: [], 3: []}
    with tempfile.TemporaryDirectory(prefix="chunkd-cluster-bench-") as name, ExitStack() as stack:
        tmp = Path(name)
        source = tmp / "source.bin"
        with source.open("wb") as out:
            for _ in range(args.uploads * args.size_mib):
                out.write(os.urandom(MiB))
        pg = stack.enter_context(running_postgres())
        redis_url = stack.enter_context(running_redis())
        s3 = stack.enter_context(running_moto())
        s3.create_bucket("chunkd")
        env = {
            "CHUNKD_CATALOG": "postgres", "CHUNKD_POSTGRES_DSN": pg.dsn(),
            "CHUNKD_REDIS_URL": redis_url, **s3.chunkd_env("chunkd"),
            "CHUNKD_BEHIND_PROXY": "true",
        }  # fmt: skip
        for rep in range(args.reps):
            for count in (1, 3) if rep % 2 == 0 else (3, 1):
                rate = run(env, tmp, count, source, args.uploads, size)
                results[count].append(rate)
                print(f"rep {rep}: {count} instance(s): {rate:.0f} MB/s", flush=True)
    one, three = statistics.median(results[1]), statistics.median(results[3])
    text = "\n".join([
        "## Several instances",
        "",
        f"`.venv/bin/python bench/cluster_bench.py --uploads {args.uploads} --size-mib"
        f" {args.size_mib} --reps {args.reps} --out docs/benchmarks.md`: {args.uploads} concurrent",
        f"tus uploads of {args.size_mib} MiB (8 MiB PATCHes) through nginx round-robin, chunkd",
        "sharing PostgreSQL, Redis and moto (S3 in Python) on this one 2-core machine.",
        "",
        "| instances | MB/s per run | median |",
        "|---|---|---|",
        *(f"| {n} | {' / '.join(f'{r:.0f}' for r in rs)} | {statistics.median(rs):.0f} |"
          for n, rs in results.items()),
        "",
        f"3 instances: {three / one:.2f}x of one. On one machine every instance, the object store",
        "and the database share the same two cores: this shows the instances cooperating, not",
        "scaling; scaling needs machines.",
    ])  # fmt: skip
    print(text)
    if args.out:
        write_section(args.out, "cluster-bench", text, "bench/cluster_bench.py")


if __name__ == "__main__":
    main()
