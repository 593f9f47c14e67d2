"""Reproducible tus upload benchmark: chunkd against its peers and the machine's limits.

    .venv/bin/python bench/tus_bench.py [--quick] [--reps N] [--out docs/benchmarks.md]

In one run (the machine is shared and noisy, so everything is compared as ratios inside the
run), each case is repeated, the servers interleaved and their order rotated per repetition,
and medians are reported. Each case starts a fresh server with an empty directory on a free
127.0.0.1 port, ``sync``s, times the workload with a sendfile-based client, samples the server
tree's RSS and CPU, verifies every stored byte by sha256, and stops the server.
Needs: nginx (Debian ``nginx``), node with ``npm ci`` done in bench/peers, the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import psutil
from cases import MIB, Workload, run_dd, run_server
from report import (
    DD_DSYNC,
    DD_SYNC,
    WORKERS,
    Results,
    Run,
    checks,
    checks_table,
    server_comparison,
    table,
    workers_comparison,
)
from sections import write_section
from servers import PEERS, SPECS

from chunkd.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

METHOD = """\
## Method

- Each case starts a fresh server (or dd) on a free 127.0.0.1 port with an empty directory on
  the same disk, runs `sync`, then times the workload from the first request to the last
  answer. Repetitions are interleaved: every repetition runs every server once per workload,
  in an order rotated each time. Medians are reported; MB/s counts the payload bytes.
- Client: asyncio raw sockets, one keep-alive connection per upload, bodies sent zero-copy
  with `loop.sock_sendfile` from a random file made once (in the page cache). tus servers get
  POST (Upload-Length) + PATCH(es) (Upload-Offset); nginx gets the same bytes as PUT(s) to its
  dav module (workload B: 8 MiB PUTs to consecutive part files).
- Verification: after each case the sha256 of every stored file (B on nginx: of its parts,
  concatenated) is compared with the source range; any mismatch aborts the run.
- Peak RSS: the server's process tree, summed, sampled every 50 ms (dd: sum of `ru_maxrss` of
  the dd processes, 32 of them in C). CPU: user + system seconds of the tree over the workload.
- Only chunkd default and the dd rows sync data before answering. chunkd no-fsync,no-digest,
  @tus/server (file-store), tuspyserver and nginx answer once the bytes are in the page cache.
- Targets are ratios of medians inside this one run, so the machine's noise mostly cancels.
"""


def workloads(size: int, c_size: int) -> list[Workload]:
    return [
        Workload("A", f"A: 1 x {size // MIB} MiB, one PATCH", 1, size, size),
        Workload(
            "B", f"B: {size // MIB} MiB as {size // (8 * MIB)} x 8 MiB PATCHes", 1, size, 8 * MIB
        ),
        Workload("C", f"C: 32 concurrent x {c_size // MIB} MiB", 32, c_size, c_size),
    ]


def make_source(path: Path, size: int) -> None:
    print(f"generating {size // MIB} MiB of random data in {path}", flush=True)
    with path.open("wb") as f:
        for _ in range(size // (16 * MIB)):
            f.write(os.urandom(16 * MIB))


def archive_src(rev: str, into: Path) -> tuple[str, Path]:
    """``rev``'s ``src/`` extracted (``git archive``) into the new directory ``into``; returns
    the full commit hash and the extracted ``src`` directory."""
    commit = _out("git", "-C", str(ROOT), "rev-parse", rev)
    into.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return commit, into / "src"


def snapshot_chunkd(work: Path, tree: str) -> str:
    """Freeze the chunkd under test: ``head`` runs a ``git archive`` of HEAD's src/ (others may
    be editing the working tree during the run), ``working`` the working tree as it is."""
    if tree == "working":
        return "the working tree, " + _out(
            "git", "-C", str(ROOT), "describe", "--always", "--dirty"
        )
    commit, src = archive_src("HEAD", work / "chunkd-head")
    os.environ["PYTHONPATH"] = str(src)  # ahead of the editable install's .pth
    where = subprocess.run(
        [sys.executable, "-c", "import chunkd; print(chunkd.__file__)"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if not where.startswith(str(src)):
        raise RuntimeError(f"chunkd would be imported from {where}, not the snapshot {src}")
    return f"a `git archive` of HEAD {commit[:10]} (uncommitted edits not measured)"


def _out(*command: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        return (done.stdout + done.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return "unavailable"


def machine() -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    node_pkg = PEERS / "node_modules" / "@tus"

    def node_version(name: str) -> str:
        meta = node_pkg / name / "package.json"
        return json.loads(meta.read_text())["version"] if meta.exists() else "missing"

    disk = _out("findmnt", "-no", "SOURCE,FSTYPE,OPTIONS", "-T", tempfile.gettempdir())
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores (nproc {_out('nproc')}); "
        f"memory {psutil.virtual_memory().total / 2**30:.1f} GiB",
        f"- kernel {platform.release()}; disk under {tempfile.gettempdir()}: {disk}",
        f"- Python {platform.python_version()}, Node {_out('node', '--version')}, "
        f"{_out('nginx', '-v')}, {_out('dd', '--version')}",
        f"- chunkd {version('chunkd')}, uvicorn {version('uvicorn')}, "
        f"granian {version('granian')}, uvloop {version('uvloop')}, "
        f"httptools {version('httptools')}",
        f"- peers: @tus/server {node_version('server')}, @tus/file-store "
        f"{node_version('file-store')}, tuspyserver {version('tuspyserver')} "
        f"(fastapi {version('fastapi')})",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repetition")
    parser.add_argument("--reps", type=int, help="repetitions per case (default 3, quick 1)")
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument(
        "--chunkd-tree", choices=("head", "working"), default="head",
        help="measure HEAD (a git archive snapshot, default) or the working tree as it is",
    )  # fmt: skip
    args = parser.parse_args()
    reps = args.reps or (1 if args.quick else 3)
    size = 64 * MIB if args.quick else 1024 * MIB
    wls = workloads(size, size // 32)
    flat = [
        Workload("A-small", f"1 x {size // 4 // MIB} MiB, one PATCH", 1, size // 4, size // 4),
        Workload("A-big", f"1 x {4 * size // MIB} MiB, one PATCH", 1, 4 * size, 4 * size),
    ]
    titles = {w.key: w.title for w in [*wls, *flat]}
    began, clock = dt.datetime.now(dt.UTC), time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="chunkd-bench-"))
    results: Results = {}
    raw_dir = ROOT / "bench" / "results"
    raw_dir.mkdir(exist_ok=True)
    raw = raw_dir / f"{began:%Y%m%dT%H%M%S}.jsonl"
    try:
        measured = snapshot_chunkd(work, args.chunkd_tree)
        source = work / "source.bin"
        make_source(source, 4 * size)
        Case = tuple[str, Callable[[Workload, str], Run]]
        cases: list[Case] = [
            (spec.name, lambda wl, tag, s=spec: run_server(s, wl, source, work, tag))
            for spec in SPECS
        ]
        dd_flags = {DD_SYNC: ["bs=8M", "conv=fdatasync"], DD_DSYNC: ["bs=8M", "oflag=dsync"]}
        cases += [
            (name, lambda wl, tag, f=flags: run_dd(f, wl, source, work, tag))
            for name, flags in dd_flags.items()
        ]
        plan = [
            (rep, wl, cases[(i + rep) % len(cases)])
            for rep in range(reps)
            for wl in wls
            for i in range(len(cases))
        ]
        plan += [(0, wl, case) for wl in flat for case in cases[:2]]  # chunkd default only
        for n, (rep, wl, (name, run)) in enumerate(plan, 1):
            result = run(wl, f"{wl.key}-{rep}")
            results.setdefault((name, wl.key), []).append(result)
            with raw.open("a") as log:
                log.write(json.dumps({"case": name, "workload": wl.key, "rep": rep,
                                      **dataclasses.asdict(result)}) + "\n")  # fmt: skip
            print(
                f"[{n}/{len(plan)} {time.monotonic() - clock:5.0f}s] {wl.key:4} rep {rep} "
                f"{name:38} {result.mbps:7.0f} MB/s  peak RSS {result.peak_rss / MIB:7.1f} "
                f"MiB  CPU {result.cpu:6.2f} s",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    names = [name for name, _ in cases]
    found = checks(results, [w.key for w in wls], ["A-small", "A", "A-big"])
    command = "python bench/tus_bench.py " + shlex.join(sys.argv[1:])
    engine = Settings.model_fields["asgi_server"].default
    shipped = [c for c in found if c.target.split(" ≥ ")[0].split(" peak")[0].endswith(engine)]
    two = [c for c in found if WORKERS in c.target]
    doc = [
        "# Benchmarks",
        "",
        f"Generated by `{command.strip()}` (`make bench` runs it with `--out "
        f"docs/benchmarks.md`) on {began:%Y-%m-%d %H:%M} UTC; {reps} repetition(s) per case, "
        f"{(time.monotonic() - clock) / 60:.1f} min in all. MB = 10^6 bytes.",
        "",
        "## Machine",
        "",
        *machine(),
        f"- chunkd under test: {measured}",
        "",
        METHOD,
        "## Results",
        "",
        *table(results, names, titles),
        "",
        "## Targets",
        "",
        *checks_table(found),
        "",
        f"**{sum(c.holds for c in found)} of {len(found)} targets hold**; for chunkd as it"
        f" ships (`{engine}`, the default ASGI server): {sum(c.holds for c in shipped)} of"
        f" {len(shipped)}; with `--workers 2`: {sum(c.holds for c in two)} of {len(two)}.",
        "",
        "## uvicorn or granian for chunkd",
        "",
        *server_comparison(results, [w.key for w in wls]),
        "",
        "## One worker or two (`chunkd serve --workers 2`)",
        "",
        "Peak RSS sums the supervisor and both workers (pages they share after the fork are",
        "counted in each).",
        "",
        *workers_comparison(results, [w.key for w in wls]),
        "",
    ]
    text = "\n".join(doc)
    print("\n" + text)
    if args.out:
        write_section(args.out, "tus-bench", text, "bench/tus_bench.py")
        print(f"wrote its section of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
