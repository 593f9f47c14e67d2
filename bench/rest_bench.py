"""REST sessions: parallel parts against the tus path, and what completing costs.

    .venv/bin/python bench/rest_bench.py [--reps 2] [--out docs/benchmarks.md]

One chunkd (default settings: fsync and whole-file sha256) per case, in one run:
- 1 GiB in 10 MiB parts over 1, 4 and 8 connections, and 1 GiB as one tus PATCH,
  alternating, ``--reps`` times; MB/s (creation to acknowledged last part) and server peak RSS;
- ``complete`` of a 1 GiB and a 10 GiB session (8 connections; the 10 GiB file is made of
  parts of the 1 GiB source): the time of the complete request alone, which must not grow with
  the size beyond the digest work the background frontier has not done yet.
Bodies go out with sendfile from one source file; every result's sha256 is checked.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import BinaryIO

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadclient import TUS, Connection
from bench.sections import write_section

from chunkd.testing.server import ServerProcess

GiB, MiB = 1 << 30, 1 << 20
PART = 10 * MiB


def where(n: int, source: int) -> int:
    """Where part ``n`` is read from: a file larger than the source reuses it, part by part."""
    return (n * PART) % (source - PART + 1)


def digest_of(path: Path, size: int) -> str:
    source = path.stat().st_size
    hasher = hashlib.sha256()
    with path.open("rb") as file:
        for n in range(-(-size // PART)):
            file.seek(where(n, source))
            hasher.update(file.read(min(PART, size - n * PART)))
    return hasher.hexdigest()


class PeakRss:
    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / MiB


async def rest(
    port: int, file: BinaryIO, size: int, connections: int, digest: str
) -> tuple[float, float, int]:
    """Seconds to send every part, seconds of the complete request, and the bytes the
    frontier had not hashed yet when complete was asked (the digest work left to it)."""
    source = os.fstat(file.fileno()).st_size
    async with Connection(port) as conn:
        body = json.dumps({"filename": "x.bin", "size": size, "part_size": PART, "sha256": digest})
        created = await conn.request(
            "POST", "/uploads", {"Content-Type": "application/json"}, None, body.encode()
        )
        session = json.loads(created.body)
        started = time.perf_counter()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(session["part_count"]):
            queue.put_nowait(n)

        async def worker() -> None:
            async with Connection(port) as own:
                while not queue.empty():
                    n = queue.get_nowait()
                    count = min(PART, size - n * PART)
                    answer = await own.request(
                        "PUT",
                        f"/uploads/{session['id']}/parts/{n}",
                        {},
                        (file, where(n, source), count),
                    )
                    assert answer.status == 201, answer.body[:200]

        await asyncio.gather(*(worker() for _ in range(connections)))
        sent = time.perf_counter() - started
    async with Connection(port) as conn:  # a fresh connection: the first one sat idle
        status = await conn.request("GET", f"/uploads/{session['id']}", {})
        left = size - json.loads(status.body)["offset"]
        started = time.perf_counter()
        done = await conn.request("POST", f"/uploads/{session['id']}/complete", {})
        completing = time.perf_counter() - started
        result = json.loads(done.body)
        assert result["state"] == "complete" and result["digests"]["sha256"] == digest, result
        return sent, completing, left


async def tus(port: int, file: BinaryIO, size: int) -> float:
    async with Connection(port) as conn:
        created = await conn.request(
            "POST", "/files/", {"Tus-Resumable": TUS, "Upload-Length": str(size)}
        )
        path = "/files/" + created.headers["location"].rsplit("/", 1)[1]
        started = time.perf_counter()
        headers = {
            "Tus-Resumable": TUS,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        }
        answer = await conn.request("PATCH", path, headers, (file, 0, size))
        assert answer.status == 204
        return time.perf_counter() - started


def run_case(tmp: Path, label: str, case: object) -> tuple[float, float]:
    with ServerProcess(tmp / f"data-{label}-{time.monotonic_ns()}") as server:
        assert server.process is not None
        rss = PeakRss(server.process.pid)
        subprocess.run(["sync"], check=True)
        result = asyncio.run(case(server.port))  # type: ignore[operator]
        return result, rss.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--big", type=int, default=10, help="GiB for the large complete case")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chunkd-rest-bench-") as name:
        tmp = Path(name)
        source = tmp / "source.bin"
        with source.open("wb") as out:
            for _ in range(GiB // MiB):
                out.write(os.urandom(MiB))
        digest_1 = digest_of(source, GiB)
        digest_big = digest_of(source, args.big * GiB)
        rates: dict[str, list[float]] = {}
        peaks: dict[str, list[float]] = {}
        completes: dict[str, list[tuple[float, int]]] = {}
        with source.open("rb") as file:
            for rep in range(args.reps):
                cases = [("tus, one PATCH", lambda p: tus(p, file, GiB))] + [
                    (f"REST, {c} connection{'s' if c > 1 else ''}",
                     lambda p, c=c: rest(p, file, GiB, c, digest_1))
                    for c in (1, 4, 8)
                ]  # fmt: skip
                for label, case in cases if rep % 2 == 0 else cases[::-1]:
                    result, peak = run_case(tmp, "x", case)
                    seconds = result if isinstance(result, float) else result[0]
                    rates.setdefault(label, []).append(GiB / seconds / 1e6)
                    peaks.setdefault(label, []).append(peak)
                    if not isinstance(result, float) and label.endswith("8 connections"):
                        completes.setdefault("1 GiB", []).append((result[1], result[2]))
                    rate = GiB / seconds / 1e6
                    print(f"rep {rep} {label}: {rate:.0f} MB/s, peak {peak:.0f} MiB", flush=True)
            (sent, completing, left), peak = run_case(
                tmp, "big", lambda p: rest(p, file, args.big * GiB, 8, digest_big)
            )
            completes[f"{args.big} GiB"] = [(completing, left)]
            rate = args.big * GiB / sent / 1e6
            print(
                f"{args.big} GiB: {rate:.0f} MB/s, complete {completing:.2f} s with"
                f" {left / MiB:.0f} MiB left to hash, peak {peak:.0f}"
            )
        lines = [
            "## REST sessions",
            "",
            f"`.venv/bin/python bench/rest_bench.py --reps {args.reps} --out docs/benchmarks.md`:",
            "chunkd default settings (fsync, whole-file sha256), 1 GiB in 10 MiB parts, one server",
            "per case, cases alternating; parts over 1, 4 and 8 connections against one tus PATCH.",
            "",
            "| path | MB/s per run | median MB/s | vs tus | peak RSS MiB |",
            "|---|---|---|---|---|",
        ]
        tus_median = statistics.median(rates["tus, one PATCH"])
        for label, values in rates.items():
            median = statistics.median(values)
            runs = " / ".join(f"{v:.0f}" for v in values)
            lines.append(
                f"| {label} | {runs} | {median:.0f} | {median / tus_median:.2f}x"
                f" | {max(peaks[label]):.0f} |"
            )
        lines += [
            "",
            "`complete` (8 connections): the request alone, and the bytes the background",
            "frontier had not hashed yet when it was asked (what completing still has to read).",
            "",
            "| complete of | seconds | MiB left to hash |",
            "|---|---|---|",
        ]
        lines += [
            f"| {k} | {' / '.join(f'{s:.2f}' for s, _ in vs)}"
            f" | {' / '.join(f'{n / MiB:.0f}' for _, n in vs)} |"
            for k, vs in completes.items()
        ]
        text = "\n".join(lines)
        print(text)
        if args.out:
            write_section(args.out, "rest-bench", text, "bench/rest_bench.py")


if __name__ == "__main__":
    main()
