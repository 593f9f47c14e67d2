"""Running hooks: asking (pre-*), telling (post-*), and the durable hand-off (post-finish).

The hand-off row of an upload is written by the catalog in the same statement that completes
it; the :class:`HandoffDispatcher` claims due rows with a lease (one claimant across server
instances), delivers ``post-finish`` to every hook with the upload id as the delivery id, and
settles the row: delivered, due again after an exponential backoff, or failed after
``max_attempts``. A crash between completion and delivery leaves the row pending, so it is
delivered after the restart; a delivered row is never claimed again. Until a hook is
configured, hand-offs wait, pending: a pipeline attached later receives the backlog.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chunkd.exceptions import ServiceUnavailable
from chunkd.hooks.base import ALL, POST_FINISH, Hook, HookFailed
from chunkd.uploads.events import HANDOFF, Event, EventBus
from chunkd.uploads.models import Upload

if TYPE_CHECKING:
    from chunkd.catalog.base import Catalog

log = logging.getLogger("chunkd.hooks")


def payload_of(upload: Upload) -> dict[str, Any]:
    """What a hook is told about an upload (never storage internals)."""
    return {
        "id": upload.id,
        "owner": upload.owner,
        "state": str(upload.state),
        "size": upload.length,
        "offset": upload.offset,
        "metadata": upload.metadata,
        "digests": upload.digests,
        "sniffed_type": upload.sniffed_type,
        "created_at": upload.created_at,
        "updated_at": upload.updated_at,
    }


class Hooks:
    def __init__(self, hooks: list[Hook], events: frozenset[str] = frozenset(ALL)) -> None:
        self.hooks = hooks
        self.events = events
        self._tasks: set[asyncio.Task[None]] = set()
        self._told: dict[str, float] = {}
        self.deliveries = 0
        self.failures = 0

    def wants(self, name: str) -> bool:
        return bool(self.hooks) and name in self.events

    async def ask(self, name: str, payload: dict[str, Any], delivery: str) -> dict[str, Any]:
        """Run an asking hook; the merged answers. ``HookRefused`` propagates; a hook that
        cannot answer makes the request retryable (503), never silently allowed."""
        merged: dict[str, Any] = {}
        if not self.wants(name):
            return merged
        for hook in self.hooks:
            try:
                merged.update(await hook.call(name, payload, delivery))
            except HookFailed as error:
                self.failures += 1
                raise ServiceUnavailable(f"the {name} hook could not be reached") from error
        return merged

    def tell(
        self, name: str, payload: dict[str, Any], delivery: str, *, every: float = 0.0
    ) -> None:
        """Notify in the background (a few tries); ``every`` throttles per upload."""
        if not self.wants(name):
            return
        key = f"{name}:{payload.get('id')}"
        now = time.monotonic()
        if every and now - self._told.get(key, 0.0) < every:
            return
        self._told[key] = now
        task = asyncio.get_running_loop().create_task(self._tell(name, payload, delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tell(self, name: str, payload: dict[str, Any], delivery: str) -> None:
        for attempt in range(3):
            try:
                await self.deliver(name, payload, delivery)
                return
            except HookFailed:
                await asyncio.sleep(0.5 * 4**attempt)
        log.warning("giving up on a hook notification", extra={"hook": name, "upload": delivery})

    async def deliver(self, name: str, payload: dict[str, Any], delivery: str) -> None:
        for hook in self.hooks:
            try:
                await hook.call(name, payload, delivery)
            except HookFailed:
                self.failures += 1
                raise
            self.deliveries += 1

    async def close(self) -> None:
        for task in tuple(self._tasks):
            task.cancel()
        for hook in self.hooks:
            await hook.close()


class HandoffDispatcher:
    def __init__(
        self,
        catalog: Catalog,
        hooks: Hooks,
        *,
        clock: Callable[[], float] = time.time,
        lease: float = 60.0,
        retry_base: float = 2.0,
        retry_max: float = 300.0,
        max_attempts: int = 10,
        events: EventBus | None = None,
    ) -> None:
        self._catalog = catalog
        self._events = events
        self._hooks = hooks
        self._clock = clock
        self._lease = lease
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._max_attempts = max_attempts

    async def run_once(self) -> int:
        """Deliver what is due; returns how many hand-offs were tried."""
        if not self._hooks.wants(POST_FINISH):
            return 0
        claimed = await self._catalog.claim_handoffs(self._clock(), self._lease, 16)
        for handoff in claimed:
            upload = await self._catalog.get(handoff.upload_id)
            if upload is None:
                continue
            try:
                await self._hooks.deliver(POST_FINISH, payload_of(upload), upload.id)
            except HookFailed as error:
                now = self._clock()
                if handoff.attempts >= self._max_attempts:
                    await self._catalog.settle_handoff(
                        upload.id, delivered=False, now=now, error=str(error)
                    )
                    log.error("hand-off failed for good", extra={"upload": upload.id})
                    self._tell(upload, "failed", handoff.attempts, str(error))
                else:
                    delay = min(self._retry_max, self._retry_base * 2 ** (handoff.attempts - 1))
                    await self._catalog.settle_handoff(
                        upload.id, delivered=False, now=now, next_at=now + delay, error=str(error)
                    )
                    self._tell(upload, "pending", handoff.attempts, str(error))
                continue
            await self._catalog.settle_handoff(upload.id, delivered=True, now=self._clock())
            self._tell(upload, "delivered", handoff.attempts, None)
        return len(claimed)

    def _tell(self, upload: Upload, state: str, attempts: int, error: str | None) -> None:
        """Publish the hand-off's outcome to the upload's event streams."""
        if self._events is not None:
            data = {"state": state, "attempts": attempts, "error": error}
            self._events.publish(Event(HANDOFF, upload.id, upload.owner, data))

    async def run(self, poll: float = 0.5) -> None:
        while True:
            try:
                tried = await self.run_once()
            except Exception:
                log.exception("hand-off dispatch failed; retrying")
                tried = 0
            if not tried:
                await asyncio.sleep(poll)
