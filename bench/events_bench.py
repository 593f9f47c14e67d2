"""Upload throughput with 50 live progress subscribers attached, against none, in one run.

    .venv/bin/python bench/events_bench.py [--size 1GiB] [--reps 3] [--subscribers 50]

Each repetition starts chunkd (default settings), opens N Server-Sent-Event streams on the
upload about to be written (and reads them), sends one PATCH of the whole file with the
bench's sendfile client, and records MB/s and the events each subscriber received.
Repetitions alternate between 0 and N subscribers; medians and their ratio are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadclient import TUS, Connection
from bench.sections import write_section

from chunkd.testing.server import ServerProcess

PATCH = {"Tus-Resumable": TUS, "Content-Type": "application/offset+octet-stream"}


async def subscriber(url: str, counts: list[int], ready: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=None) as client, client.stream("GET", url) as answer:
        ready.set()
        async for line in answer.aiter_lines():
            if line.startswith("event: "):
                counts.append(1)
                if line == "event: completed":
                    return


async def one_run(
    server: ServerProcess, source: Path, size: int, subscribers: int
) -> tuple[float, int]:
    async with Connection(server.port) as conn:
        created = await conn.request(
            "POST", "/files/", {"Tus-Resumable": TUS, "Upload-Length": str(size)}
        )
        path = urlsplit(created.headers["location"]).path
        upload_id = path.rsplit("/", 1)[1]
        counts: list[int] = []
        readies = [asyncio.Event() for _ in range(subscribers)]
        tasks = [
            asyncio.create_task(
                subscriber(f"{server.url}/uploads/{upload_id}/events", counts, ready)
            )
            for ready in readies
        ]
        await asyncio.gather(*(ready.wait() for ready in readies))
        await asyncio.to_thread(subprocess.run, ["sync"], check=True)
        with source.open("rb") as file:
            started = time.perf_counter()
            answer = await conn.request(
                "PATCH", path, {**PATCH, "Upload-Offset": "0"}, (file, 0, size)
            )
            seconds = time.perf_counter() - started
        assert answer.status == 204, answer.status
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        return size / seconds / 1e6, len(counts)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1 << 30)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--out", type=Path, help="write the result to this Markdown file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chunkd-events-bench-") as tmp:
        source = Path(tmp) / "source.bin"
        with source.open("wb") as out:
            for _ in range(args.size // (1 << 20)):
                out.write(os.urandom(1 << 20))
        results: dict[int, list[float]] = {0: [], args.subscribers: []}
        events: list[int] = []
        for rep in range(args.reps):
            for count in (0, args.subscribers) if rep % 2 == 0 else (args.subscribers, 0):
                with ServerProcess(Path(tmp) / f"data-{rep}-{count}") as server:
                    rate, received = asyncio.run(one_run(server, source, args.size, count))
                results[count].append(rate)
                if count:
                    events.append(received // count)
                print(f"rep {rep}: {count:>3} subscribers: {rate:7.1f} MB/s", flush=True)
        none, many = statistics.median(results[0]), statistics.median(results[args.subscribers])
        if args.out:
            n = args.subscribers
            rows = "\n".join(
                f"| {count} | {' / '.join(f'{r:.0f}' for r in rates)} "
                f"| {statistics.median(rates):.0f} |"
                for count, rates in results.items()
            )
            write_section(args.out, "events-bench", "\n".join([
                "## Live progress subscribers",
                "",
                "`.venv/bin/python bench/events_bench.py"
                f" --reps {args.reps} --out docs/benchmarks.md`: one {args.size >> 20} MiB",
                f"PATCH to chunkd (default settings) with 0 and {n}",
                "Server-Sent-Event subscribers on that upload, alternating, in one run.",
                "",
                "| subscribers | MB/s per run | median |",
                "|---|---|---|",
                rows,
                "",
                f"**{n} subscribers: {many / none:.2f}x the throughput of none** (target >= 0.90);"
                f" events per subscriber per run: {events}.",
            ]), "bench/events_bench.py")  # fmt: skip
        print(
            f"median MB/s: none {none:.1f}, {args.subscribers} subscribers {many:.1f}; "
            f"ratio {many / none:.2f} (target >= 0.90); events per subscriber: {events}"
        )


if __name__ == "__main__":
    main()
