"""A loopback TCP proxy for tests that cuts connections at random points, stalls them, and can
throttle them; it counts the REST part PUTs it forwards.

Each accepted connection gets a random budget of client-to-server bytes; when the budget runs
out mid-stream both sides are closed (the server sees a body cut short, the client a reset).
Some connections also stall once for a while, longer than a short client timeout.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from types import TracebackType
from typing import Self


class ChaosProxy:
    def __init__(
        self,
        upstream_port: int,
        *,
        cut: float = 0.0,  # share of connections cut after a random number of bytes
        cut_within: int = 8 << 20,  # ... of at most this many bytes
        stall: float = 0.0,  # share of connections that stall once
        stall_seconds: tuple[float, float] = (0.5, 3.0),
        rate: float | None = None,  # bytes per second per connection, upstream
        seed: int = 6,
    ) -> None:
        self.upstream_port = upstream_port
        self.cut, self.cut_within, self.stall, self.stall_seconds = (
            cut,
            cut_within,
            stall,
            (stall_seconds),
        )
        self.rate = rate
        self.random = random.Random(seed)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.part_puts = 0
        self.cuts = self.stalls = 0
        self._lock = threading.Lock()
        self._closing = False
        self._sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
                budget = (
                    self.random.randrange(self.cut_within)
                    if self.random.random() < self.cut
                    else None
                )
                stall_at = (
                    self.random.randrange(self.cut_within)
                    if self.random.random() < self.stall
                    else None
                )
                stall_for = self.random.uniform(*self.stall_seconds)
            threading.Thread(
                target=self._pump, args=(client, upstream, budget, stall_at, stall_for, True),
                daemon=True,
            ).start()  # fmt: skip
            threading.Thread(
                target=self._pump, args=(upstream, client, None, None, 0.0, False), daemon=True
            ).start()

    def _pump(
        self,
        source: socket.socket,
        target: socket.socket,
        budget: int | None,
        stall_at: int | None,
        stall_for: float,
        upstream: bool,
    ) -> None:
        sent, tail = 0, b""
        started = time.monotonic()
        try:
            while data := source.recv(64 * 1024):
                if upstream:
                    window = tail + data
                    with self._lock:
                        self.part_puts += window.count(b"PUT /uploads/")
                    tail = data[-16:]
                if stall_at is not None and sent + len(data) >= stall_at:
                    stall_at = None
                    with self._lock:
                        self.stalls += 1
                    time.sleep(stall_for)
                if budget is not None and sent + len(data) > budget:
                    target.sendall(data[: budget - sent])
                    with self._lock:
                        self.cuts += 1
                    break
                target.sendall(data)
                sent += len(data)
                if upstream and self.rate:
                    ahead = sent / self.rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self._closing = True
        self.listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
