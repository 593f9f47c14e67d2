"""Medians, target ratios and the Markdown report of one benchmark run."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

MIB = 1024 * 1024

WORKERS = ", 2 workers"  # chunkd serve --workers 2 (uvicorn)
DEFAULT = (
    "chunkd default / uvicorn",
    "chunkd default / granian",
    f"chunkd default / uvicorn{WORKERS}",
)
LFL = (
    "chunkd no-fsync,no-digest / uvicorn",
    "chunkd no-fsync,no-digest / granian",
    f"chunkd no-fsync,no-digest / uvicorn{WORKERS}",
)
NODE = "@tus/server + file-store"
TUSPY = ("tuspyserver / uvicorn", "tuspyserver / granian")
DD_SYNC = "dd conv=fdatasync"
DD_DSYNC = "dd bs=8M oflag=dsync"


@dataclass(frozen=True)
class Run:
    seconds: float
    nbytes: int
    peak_rss: int
    cpu: float

    @property
    def mbps(self) -> float:
        return self.nbytes / self.seconds / 1e6


Results = dict[tuple[str, str], list[Run]]


def mbps(results: Results, case: str, workload: str) -> float | None:
    runs = results.get((case, workload))
    return statistics.median(r.mbps for r in runs) if runs else None


def peak_rss(results: Results, case: str, workload: str) -> int | None:
    runs = results.get((case, workload))
    return max(r.peak_rss for r in runs) if runs else None


def table(results: Results, cases: list[str], workloads: dict[str, str]) -> list[str]:
    lines = [
        "| workload | server | MB/s (median) | MB/s of each run | peak RSS MiB (max) "
        "| CPU s (median) |",
        "|---|---|---:|---|---:|---:|",
    ]
    for key, title in workloads.items():
        for case in cases:
            runs = results.get((case, key))
            if not runs:
                continue
            each = ", ".join(f"{r.mbps:.0f}" for r in runs)
            rss = max(r.peak_rss for r in runs) / MIB
            cpu = statistics.median(r.cpu for r in runs)
            lines.append(
                f"| {title} | {case} | {mbps(results, case, key):.0f} | {each} "
                f"| {rss:.1f} | {cpu:.2f} |"
            )
    return lines


@dataclass(frozen=True)
class Check:
    target: str
    detail: str
    holds: bool


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}x"


def checks(results: Results, workloads: list[str], flat_keys: list[str]) -> list[Check]:
    out: list[Check] = []
    for case in LFL:
        for wl in workloads:
            r = _ratio(mbps(results, case, wl), mbps(results, NODE, wl))
            out.append(
                Check(
                    f"{case} ≥ 2.5x @tus/server, workload {wl}", _fmt(r), r is not None and r >= 2.5
                )
            )
            best = max((mbps(results, t, wl) or 0.0) for t in TUSPY) or None
            r = _ratio(mbps(results, case, wl), best)
            out.append(
                Check(
                    f"{case} ≥ 1.0x best tuspyserver, workload {wl}",
                    _fmt(r),
                    r is not None and r >= 1.0,
                )
            )
    for case in DEFAULT:
        for wl, dd in (("A", DD_SYNC), ("B", DD_DSYNC)):
            r = _ratio(mbps(results, case, wl), mbps(results, dd, wl))
            out.append(
                Check(f"{case} ≥ 0.80x {dd}, workload {wl}", _fmt(r), r is not None and r >= 0.8)
            )
    for case in (*DEFAULT, *LFL):
        rss = peak_rss(results, case, "C")
        out.append(
            Check(
                f"{case} peak RSS < 100 MiB, workload C (32 in flight)",
                "n/a" if rss is None else f"{rss / MIB:.1f} MiB",
                rss is not None and rss < 100 * MIB,
            )
        )
    for case in DEFAULT[:2]:  # the growing files run on one worker only
        peaks = [(k, peak_rss(results, case, k)) for k in flat_keys]
        known = [p for _, p in peaks if p is not None]
        spread = (max(known) - min(known)) / MIB if known else None
        detail = ", ".join(f"{k}: {p / MIB:.1f} MiB" for k, p in peaks if p is not None)
        out.append(
            Check(
                f"{case} peak RSS flat as the file grows (spread ≤ 16 MiB)",
                f"{detail}; spread {spread:.1f} MiB" if spread is not None else "n/a",
                spread is not None and spread <= 16,
            )
        )
    return out


def server_comparison(results: Results, workloads: list[str]) -> list[str]:
    lines = [
        "| chunkd mode | workload | uvicorn MB/s | granian MB/s | faster |",
        "|---|---|---:|---:|---|",
    ]
    for mode, (uv, gr, _) in (("default", DEFAULT), ("no-fsync, no digests", LFL)):
        for wl in workloads:
            a, b = mbps(results, uv, wl), mbps(results, gr, wl)
            if a is None or b is None:
                continue
            faster = "uvicorn" if a > b else "granian"
            lines.append(
                f"| {mode} | {wl} | {a:.0f} | {b:.0f} | {faster} ({max(a, b) / min(a, b):.2f}x) |"
            )
    return lines


def checks_table(found: list[Check]) -> list[str]:
    lines = ["| target | measured | holds |", "|---|---|---|"]
    lines += [f"| {c.target} | {c.detail} | {'yes' if c.holds else '**NO**'} |" for c in found]
    return lines


def workers_comparison(results: Results, workloads: list[str]) -> list[str]:
    lines = [
        "| chunkd mode | workload | 1 worker MB/s | 2 workers MB/s | ratio | peak RSS MiB, 1 / 2 |",
        "|---|---|---:|---:|---:|---|",
    ]
    for mode, (one, _, two) in (("default", DEFAULT), ("no-fsync, no digests", LFL)):
        for wl in workloads:
            a, b = mbps(results, one, wl), mbps(results, two, wl)
            ra, rb = peak_rss(results, one, wl), peak_rss(results, two, wl)
            if a is None or b is None or ra is None or rb is None:
                continue
            lines.append(
                f"| {mode} | {wl} | {a:.0f} | {b:.0f} | {b / a:.2f}x "
                f"| {ra / MIB:.0f} / {rb / MIB:.0f} |"
            )
    return lines
