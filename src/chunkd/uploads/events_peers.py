"""Events across the worker processes of one server (``chunkd serve --workers N``).

Each worker hands the events it produces to its own subscribers and sends them to the other
workers (:mod:`chunkd.uploads.peers`), which hand them to theirs: a client watching through one
worker sees an upload whose bytes go to another. Workers also tell each other how many
subscribers they have, so progress is only measured and sent while someone, somewhere, watches.
Delivery is best effort, as for a slow subscriber: a message a full socket refuses is dropped.
Parts of one upload may be received by several workers, each measuring the progress it sees:
a progress event below one already delivered for the upload is not delivered.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from chunkd.uploads.events import FINAL, PROGRESS, Event, EventBus, Subscription
from chunkd.uploads.peers import Peers

_KEPT = 10_000  # uploads whose highest progress is remembered


class PeerEventBus(EventBus):
    def __init__(self, peers: Peers, queue_size: int = 64) -> None:
        super().__init__(queue_size)
        self._peers = peers
        self._remote: dict[int, int] = {}  # worker -> its subscribers
        self._highest: dict[str, int] = {}  # upload -> most bytes a progress event reported

    @property
    def subscribers(self) -> int:
        """Asked for every body chunk received (is progress worth measuring?): cheap when
        no other worker has subscribers, as ``_remote`` only keeps those that do."""
        if not self._remote:
            return len(self._subscriptions)
        others = set(self._peers.others())
        for gone in [pid for pid in self._remote if pid not in others]:
            del self._remote[gone]  # a worker killed while it had subscribers
        return len(self._subscriptions) + sum(self._remote.values())

    async def start(self) -> None:
        self._peers.on("event", self._on_event)
        self._peers.on("subscribers", self._on_count)
        self._peers.on("subscribers?", lambda message: self._announce(int(message["from"])))
        await self._peers.open()
        self._peers.broadcast({"kind": "subscribers?"})

    async def stop(self) -> None:
        if self._subscriptions:
            self._subscriptions.clear()
            self._announce()
        await self._peers.close()

    def publish(self, event: Event) -> None:
        self._deliver(event)  # this worker's subscribers at once
        if self._remote:  # some other worker has subscribers
            self._peers.broadcast({"kind": "event", "event": event.relayed()})

    @contextmanager
    def subscribe(
        self, *, upload_id: str | None = None, owner: str | None = None
    ) -> Iterator[Subscription]:
        with super().subscribe(upload_id=upload_id, owner=owner) as subscription:
            self._announce()
            try:
                yield subscription
            finally:
                self._subscriptions.discard(subscription)
                self._announce()

    def _announce(self, to: int | None = None) -> None:
        count = len(self._subscriptions)
        message = {"kind": "subscribers", "count": count}
        if to is None:
            self._peers.broadcast(message)
        else:
            self._peers.send(to, message)

    def _on_count(self, message: dict[str, Any]) -> None:
        worker, count = int(message["from"]), int(message["count"])
        if count:
            self._remote[worker] = count
        else:
            self._remote.pop(worker, None)

    def _on_event(self, message: dict[str, Any]) -> None:
        self._deliver(Event.from_relayed(message["event"]))

    def _deliver(self, event: Event) -> None:
        if event.type == PROGRESS:
            received = int(event.data.get("bytes_received") or 0)
            if received < self._highest.get(event.upload_id, 0):
                return  # another worker already told more
            self._highest[event.upload_id] = received
            if len(self._highest) > _KEPT:  # uploads whose end this worker never heard of
                del self._highest[next(iter(self._highest))]
        elif event.type in FINAL:
            self._highest.pop(event.upload_id, None)
        EventBus.publish(self, event)
