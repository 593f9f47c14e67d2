"""Upload events, and the in-process bus that carries them to subscribers.

Publishing never waits: each subscriber has a small bounded queue, and when it is full the
oldest *progress* event is dropped (a newer one says more), so a slow subscriber never slows
an upload. Lifecycle events (created, completed, failed, aborted, expired) are only dropped
when a queue is full of nothing else. A cross-instance bus (Redis) implements the same
``publish``/``subscribe`` pair.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

CREATED = "created"
PROGRESS = "progress"
COMPLETED = "completed"
FAILED = "failed"
ABORTED = "aborted"
EXPIRED = "expired"
STATE = "state"  # the current state, sent first to every new subscriber
VERIFYING = "verifying"
HANDOFF = "handoff"  # the hand-off to processing settled: delivered, failed, or retrying
FINAL = frozenset({COMPLETED, FAILED, ABORTED, EXPIRED})


@dataclass(frozen=True)
class Event:
    type: str
    upload_id: str
    owner: str | None
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "upload_id": self.upload_id, "at": self.at, **self.data}

    def relayed(self) -> dict[str, Any]:
        """The event as sent to other instances or workers (with its owner)."""
        return {**self.to_dict(), "owner": self.owner}

    @classmethod
    def from_relayed(cls, relayed: dict[str, Any]) -> Event:
        """The event another instance or worker sent (``KeyError`` if it is not one)."""
        data = dict(relayed)
        return cls(
            type=data.pop("type"),
            upload_id=data.pop("upload_id"),
            owner=data.pop("owner"),
            at=data.pop("at"),
            data=data,
        )

    @cached_property
    def json(self) -> str:
        """Serialised once, however many subscribers send it."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


class Subscription:
    def __init__(self, upload_id: str | None, owner: str | None, size: int) -> None:
        self.upload_id = upload_id
        self.owner = owner
        self._events: deque[Event] = deque()
        self._size = size
        self._ready = asyncio.Event()
        self.dropped = 0
        self.closed = False

    def close(self) -> None:
        """The server is stopping: wake the reader, whose stream then ends."""
        self.closed = True
        self._ready.set()

    def wants(self, event: Event) -> bool:
        if self.upload_id is not None:
            return event.upload_id == self.upload_id
        return self.owner is None or event.owner == self.owner

    def offer(self, event: Event) -> None:
        if len(self._events) >= self._size:
            stale = next((e for e in self._events if e.type == PROGRESS), self._events[0])
            self._events.remove(stale)
            self.dropped += 1
        self._events.append(event)
        self._ready.set()

    async def get(self, within: float | None = None) -> Event | None:
        """The next event, or ``None`` after ``within`` seconds without one."""
        while not self._events:
            if self.closed:
                return None
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), within)
            except TimeoutError:
                return None
        return self._events.popleft()


class EventBus:
    """Subscribers in this process."""

    def __init__(self, queue_size: int = 64) -> None:
        self._subscriptions: set[Subscription] = set()
        self._queue_size = queue_size

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def close(self) -> None:
        for subscription in tuple(self._subscriptions):
            subscription.close()

    def publish(self, event: Event) -> None:
        for subscription in tuple(self._subscriptions):
            if subscription.wants(event):
                subscription.offer(event)

    @contextmanager
    def subscribe(
        self, *, upload_id: str | None = None, owner: str | None = None
    ) -> Iterator[Subscription]:
        """Events of one upload, or of every upload of ``owner`` (``None``: of everyone)."""
        subscription = Subscription(upload_id, owner, self._queue_size)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)


class ProgressMeter:
    """Turns byte counts into at most four progress events a second per upload, with a rate
    (bytes/s, smoothed) and an ETA."""

    MIN_GAP = 0.25  # four a second: within the 1-10 a second promised, at less cost

    def __init__(self, bus: EventBus, clock: Any = time.monotonic) -> None:
        self._bus = bus
        self._clock = clock
        self._state: dict[str, list[float]] = {}  # upload id -> [last emit, last bytes, rate]

    def update(self, upload_id: str, owner: str | None, received: int, length: int | None) -> None:
        if not self._bus.subscribers:
            return
        now = self._clock()
        last = self._state.get(upload_id)
        if last is None:
            self._state[upload_id] = [now, float(received), 0.0]
            return
        elapsed = now - last[0]
        if elapsed < self.MIN_GAP:
            return
        instant = (received - last[1]) / elapsed
        rate = instant if last[2] == 0 else 0.7 * last[2] + 0.3 * instant
        self._state[upload_id] = [now, float(received), rate]
        eta = None if not length or rate <= 0 else max(0.0, (length - received) / rate)
        data = {"bytes_received": received, "size": length, "rate": round(rate), "eta": eta}
        self._bus.publish(Event(PROGRESS, upload_id, owner, data))

    def forget(self, upload_id: str) -> None:
        self._state.pop(upload_id, None)
