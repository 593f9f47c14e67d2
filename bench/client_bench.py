"""Client benchmark: ``chunkd upload`` of one large file against tuspy and curl, same server.

    .venv/bin/python bench/client_bench.py [--size 1GiB] [--reps 2] [--out docs/benchmarks.md]
        [--pin | --server-workers N]

One chunkd server (``chunkd serve``, default settings, a fresh data directory) takes every
upload, after one unmeasured 32 MiB warm-up upload per client. The clients run interleaved,
their order rotated per repetition, with ``sync`` before each run; each run is a fresh
process on a fresh resume directory (no resume shortcuts), its wall time covers everything
the tool does (chunkd's hashing included), and its peak RSS is the kernel's ``ru_maxrss``
of that process (``os.wait4``), cross-checked by psutil sampling. Every stored file is
checked by sha256 and deleted before the next run.

- ``chunkd``: ``chunkd upload FILE`` (REST session, 4 parallel parts, per-part crc32c,
  whole-file sha256 computed in the same pass, declared at complete and verified).
- ``tuspy``: ``TusClient.uploader(path, chunk_size=10 MiB).upload()`` (tus, one stream).
- ``curl``: one tus ``PATCH`` of the whole file streamed with ``curl -T`` (no digests).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from sections import write_section  # noqa: E402

from chunkd.testing.server import ServerProcess  # noqa: E402

MiB = 1 << 20
BIN = Path(sys.executable).parent
TUSPY = """
import sys
from tusclient import client
uploader = client.TusClient(sys.argv[1]).uploader(sys.argv[2], chunk_size=10 * 1024 * 1024)
uploader.upload()
print(uploader.url)
"""


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as file:
        left = size
        while left:
            block = os.urandom(min(left, 16 * MiB))
            digest.update(block)
            file.write(block)
            left -= len(block)
    return digest.hexdigest()


PIN: list[str] = []  # --pin: ["taskset", "-c", "1"], every client on core 1


def pin_server(pid: int) -> None:
    """Every thread of the server on core 0 (threads it starts later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {0})


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """(seconds, peak RSS MiB from wait4, peak RSS MiB sampled by psutil, stdout)."""
    command = [*PIN, *command]
    os.sync()
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    sampled = [0]
    done = threading.Event()

    def sample() -> None:
        watched = psutil.Process(process.pid)
        while not done.is_set():
            try:
                sampled[0] = max(sampled[0], watched.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{command[:3]} exited {process.returncode}")
    return elapsed, usage.ru_maxrss / 1024, sampled[0] / MiB, output


def run_chunkd(
    server: ServerProcess, path: Path, work: Path, *flags: str
) -> tuple[float, float, float, str]:
    state = Path(tempfile.mkdtemp(dir=work))
    env = {**os.environ, "CHUNKD_CLIENT_DIR": str(state)}
    command = [str(BIN / "chunkd"), "upload", str(path), "--server", server.url, "--json", *flags]
    seconds, rss, sampled, out = measure(command, env)
    shutil.rmtree(state)
    return seconds, rss, sampled, json.loads(out)["id"]


def run_tuspy(server: ServerProcess, path: Path, work: Path) -> tuple[float, float, float, str]:
    command = [sys.executable, "-c", TUSPY, server.files_url, str(path)]
    seconds, rss, sampled, out = measure(command, dict(os.environ))
    return seconds, rss, sampled, out.strip().rsplit("/", 1)[-1]


def run_curl(server: ServerProcess, path: Path, work: Path) -> tuple[float, float, float, str]:
    size = path.stat().st_size
    created = httpx.post(
        server.files_url, headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(size)}
    )
    location = httpx.URL(server.files_url).join(created.headers["location"])
    command = [
        "curl", "-sS", "-f", "-X", "PATCH", "-T", str(path), str(location),
        "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
        "-H", "Content-Type: application/offset+octet-stream", "-H", "Expect:",
    ]  # fmt: skip
    seconds, rss, sampled, _ = measure(command, dict(os.environ))
    return seconds, rss, sampled, str(location).rsplit("/", 1)[-1]


def run_curl_put(server: ServerProcess, path: Path, work: Path) -> tuple[float, float, float, str]:
    size = path.stat().st_size
    created = httpx.post(
        f"{server.url}/uploads", json={"filename": path.name, "size": size, "part_size": size}
    ).json()
    url = created["urls"]["parts"].replace("{n}", "0")
    command = ["curl", "-sS", "-f", "-X", "PUT", "-T", str(path), url, "-H", "Expect:"]
    seconds, rss, sampled, _ = measure(command, dict(os.environ))
    httpx.post(created["urls"]["complete"], timeout=60)
    return seconds, rss, sampled, created["id"]


def run_chunkd_tus(
    server: ServerProcess, path: Path, work: Path
) -> tuple[float, float, float, str]:
    return run_chunkd(server, path, work, "--tus")


CLIENTS = {
    "chunkd": run_chunkd,
    "chunkd --tus": run_chunkd_tus,
    "tuspy": run_tuspy,
    "curl PATCH": run_curl,
    "curl PUT": run_curl_put,
}


def report(
    results: dict[str, list[tuple[float, float, float]]],
    size: int,
    reps: int,
    title: str,
    workers: int = 1,
) -> str:
    rate = {
        name: size / statistics.median(r[0] for r in runs) / 1e6 for name, runs in results.items()
    }
    rss = {name: max(r[2] for r in runs) for name, runs in results.items()}
    pinned = (
        " --pin` (the server's threads on core 0, each client on core 1, as if on two machines"
        if PIN
        else "` (client and server sharing both cores"
    )
    if workers > 1:
        pinned = f" --server-workers {workers}` (client and server sharing both cores"
    serve = "default settings" if workers == 1 else f"`--workers {workers}`, else defaults"
    lines = [
        f"## {title}",
        "",
        f"`.venv/bin/python bench/client_bench.py --size {size // MiB}MiB --reps {reps}{pinned}; "
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, loopback, one `chunkd serve` with "
        f"{serve}). Median of the runs, clients interleaved with `sync` before each; "
        "peak RSS is sampled with psutil every 10 ms (`ru_maxrss` from `wait4` is inflated by "
        "the forking parent's pages, so it only bounds it from above).",
        "",
        "| client | MB/s (median) | runs (s) | peak RSS sampled (MiB) |",
        "|---|---:|---|---:|",
    ]
    for name, runs in results.items():
        times = ", ".join(f"{r[0]:.2f}" for r in runs)
        lines.append(f"| {name} | {rate[name]:.0f} | {times} | {rss[name]:.0f} |")
    mode = max(("chunkd", "chunkd --tus"), key=rate.__getitem__)
    chunkd, tuspy, rest = rate[mode], rate["tuspy"], rate["chunkd"]
    curl = rate["curl PATCH"]
    lines += [
        "",
        "Targets (chunkd at its faster mode; the REST default alone in brackets): faster than "
        f"tuspy — {'met' if chunkd > tuspy else 'NOT met'} ({chunkd / tuspy:.2f}x, `{mode}`; "
        f"REST {rest / tuspy:.2f}x); at least 80% of curl's "
        f"single stream — {'met' if chunkd >= 0.8 * curl else 'NOT met'} ({chunkd / curl:.0%}; "
        f"REST {rest / curl:.0%}); "
        f"client peak RSS under 100 MiB — {'met' if rss['chunkd'] < 100 else 'NOT met'} "
        f"({rss['chunkd']:.0f} MiB).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1GiB", help="file size, e.g. 1GiB or 256MiB")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the Client section of this markdown file")
    parser.add_argument(
        "--pin", action="store_true", help="server on core 0, clients on core 1 (taskset)"
    )
    parser.add_argument(
        "--server-workers", type=int, default=1, help="chunkd serve --workers (not with --pin)"
    )
    args = parser.parse_args()
    if args.pin and args.server_workers > 1:
        parser.error("--pin pins one server process; give it one worker")
    if args.pin:
        PIN[:] = ["taskset", "-c", "1"]
    title = "Client, server and client on separate cores" if args.pin else "Client"
    if args.server_workers > 1:
        title = f"Client, server with {args.server_workers} workers"
    number, unit = args.size[:-3], args.size[-3:]
    size = int(float(number) * {"MiB": MiB, "GiB": 1024 * MiB}[unit])
    work = Path(tempfile.mkdtemp(prefix="chunkd-client-bench-"))
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in CLIENTS}
    try:
        path = work / "payload.bin"
        expected = make_file(path, size)
        with ServerProcess(work / "data", "--workers", str(args.server_workers)) as server:
            if args.pin:
                assert server.process is not None
                pin_server(server.process.pid)
            names = list(CLIENTS)
            # warm the server up (first-request imports, thread pools, SQLite's cache) with one
            # small unmeasured upload per client, so the first measured run is not penalised
            warm = work / "warm.bin"
            make_file(warm, 32 * MiB)
            for name in names:
                upload_id = CLIENTS[name](server, warm, work)[3]
                httpx.delete(f"{server.files_url}{upload_id}", headers={"Tus-Resumable": "1.0.0"})
            for rep in range(args.reps):
                for name in names[rep % len(names) :] + names[: rep % len(names)]:
                    seconds, rss, sampled, upload_id = CLIENTS[name](server, path, work)
                    head = httpx.head(
                        f"{server.files_url}{upload_id}", headers={"Tus-Resumable": "1.0.0"}
                    )
                    stored = head.headers.get("repr-digest", "")
                    status = httpx.get(f"{server.url}/uploads/{upload_id}").json()
                    assert status["digests"].get("sha256") == expected, (name, status, stored)
                    httpx.delete(
                        f"{server.files_url}{upload_id}", headers={"Tus-Resumable": "1.0.0"}
                    )
                    results[name].append((seconds, rss, sampled))
                    print(f"{name:<12} {size / seconds / 1e6:5.0f} MB/s {seconds:6.2f} s  "
                          f"RSS {sampled:4.0f} MiB (ru_maxrss {rss:.0f})", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    section = report(results, size, args.reps, title, args.server_workers)
    print(section)
    if args.out:
        name = "client-bench-pinned" if args.pin else "client-bench"
        if args.server_workers > 1:
            name = "client-bench-workers"
        write_section(args.out, name, section, "bench/client_bench.py")


if __name__ == "__main__":
    main()
