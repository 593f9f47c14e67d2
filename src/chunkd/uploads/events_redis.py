"""Events across server instances through Redis pub/sub.

Each instance publishes every event it produces to one Redis channel and relays what the
others publish to its own local subscribers, so a client watching on instance A sees an
upload whose bytes go to instance B. Publishing stays non-blocking: events wait in a small
bounded outbox that a background task sends, and when Redis is slow the oldest progress
events are dropped first (as for a slow subscriber). Without Redis, ``EventBus`` alone serves
one instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import deque
from typing import Any

import redis.asyncio as redis

from chunkd.uploads.events import PROGRESS, Event, EventBus

log = logging.getLogger("chunkd.events")
CHANNEL = "chunkd:events"


class RedisEventBus(EventBus):
    def __init__(self, url: str, *, channel: str = CHANNEL, outbox: int = 1024) -> None:
        super().__init__()
        self._redis: redis.Redis = redis.Redis.from_url(url)
        self._channel = channel
        self._origin = secrets.token_hex(8)
        self._outbox: deque[Event] = deque()
        self._outbox_size = outbox
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def subscribers(self) -> int:
        """Subscribers on other instances are unknown here: count them as present, so
        progress is always published."""
        return max(1, len(self._subscriptions))

    async def start(self) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._channel)
        self._tasks = [
            asyncio.create_task(self._send()),
            asyncio.create_task(self._relay(pubsub)),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._redis.aclose()

    def publish(self, event: Event) -> None:
        super().publish(event)  # local subscribers at once
        if len(self._outbox) >= self._outbox_size:
            stale = next((e for e in self._outbox if e.type == PROGRESS), self._outbox[0])
            self._outbox.remove(stale)
        self._outbox.append(event)
        self._wake.set()

    async def _send(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                event = self._outbox.popleft()
                message = {"origin": self._origin, "event": event.relayed()}
                try:
                    await self._redis.publish(self._channel, json.dumps(message))
                except redis.RedisError:
                    log.warning("could not publish an event to Redis; dropping it")

    async def _relay(self, pubsub: Any) -> None:
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except redis.RedisError:
                log.warning("lost the Redis event channel; reconnecting")
                await asyncio.sleep(1)
                continue
            if message is None:
                continue
            try:
                body = json.loads(message["data"])
                if body["origin"] == self._origin:
                    continue  # ours: local subscribers already have it
                event = Event.from_relayed(body["event"])
            except (ValueError, KeyError, TypeError):
                continue
            EventBus.publish(self, event)
