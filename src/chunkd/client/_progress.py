"""Progress of one upload: acknowledged bytes and parts, bytes in flight, rate and ETA."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    phase: str  # "uploading" or "done"
    bytes_total: int
    bytes_sent: int  # acknowledged by the server plus bytes in flight
    parts_total: int
    parts_done: int
    rate: float  # bytes per second over the last few seconds
    eta: float | None  # seconds, when the rate is known


ProgressCallback = Callable[[Progress], None]


class ProgressTracker:
    """Shared by the driver's workers; calls back at most ``every`` seconds (and at the end)."""

    def __init__(
        self, total: int, parts: int, callback: ProgressCallback | None, every: float = 0.1
    ) -> None:
        self.total, self.parts_total = total, parts
        self.callback, self.every = callback, every
        self.phase = "uploading"
        self.acked = self.parts_done = self.inflight = 0
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, int]] = deque(maxlen=64)
        self._last = 0.0

    def acknowledged(self, count: int, parts: int, absolute: bool) -> None:
        with self._lock:
            if absolute:
                self.acked, self.parts_done = count, parts
            else:
                self.acked += count
                self.parts_done += parts
        self._report()

    def streamed(self, count: int) -> None:
        """``count`` bytes went out (negative: a failed request's bytes are taken back)."""
        with self._lock:
            self.inflight += count
        self._report()

    def set_phase(self, phase: str, *, sent: int | None = None) -> None:
        self.phase = phase
        if sent is not None:
            self.acked = sent
        self._report(force=True)

    def snapshot(self) -> Progress:
        now = time.monotonic()
        with self._lock:
            sent = min(self.total, self.acked + self.inflight)
            self._samples.append((now, sent))
            while len(self._samples) > 2 and now - self._samples[0][0] > 5:
                self._samples.popleft()
            first_time, first_sent = self._samples[0]
        elapsed = now - first_time
        rate = (sent - first_sent) / elapsed if elapsed > 0.2 else 0.0
        eta = (self.total - sent) / rate if rate > 0 else None
        return Progress(self.phase, self.total, sent, self.parts_total, self.parts_done, rate, eta)

    def _report(self, force: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        self._last = now
        self.callback(self.snapshot())
