"""Resource use of a server's process tree: peak summed RSS (sampled) and CPU seconds.

:class:`TreeMonitor` samples the summed RSS of the tree every ~50 ms in a thread and takes
CPU time (user + system) of the tree before and after a workload.
"""

from __future__ import annotations

import threading
from contextlib import suppress

import psutil


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in _tree(proc):
        with suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def tree_cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in _tree(proc):
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


class TreeMonitor:
    """Peak summed RSS of a process tree, sampled every ``interval`` s in a thread."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.proc))
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMonitor:
        self.cpu_before = tree_cpu(self.proc)
        self.peak = tree_rss(self.proc)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.proc))
        self.cpu = tree_cpu(self.proc) - self.cpu_before
