"""``UploadService``: the one owner of every upload invariant, for every protocol on top.

Protocol adapters (tus, REST) translate HTTP into calls here and errors back into HTTP; nothing
below this module knows about HTTP. The rules kept here:

- an append starts exactly at the acknowledged offset and never passes the length or the
  server's maximum size;
- bytes are acknowledged (offset advanced, record committed) only after they are written and,
  with ``durable``, synced; a body cut off mid-way keeps what arrived, unless a checksum was
  declared for it, in which case nothing of it counts;
- state changes are compare-and-set in the catalog, so an upload finishes exactly once;
- only the lock holder writes; a newcomer asks the holder to release (see ``locking``).

The operations live in modules of their own - ``creating`` (create, concatenate),
``appending`` (tus appends), ``sessions`` (REST parts and completion), ``finishing`` - and
share what this class holds: the catalog, the storage, the locks, the digests, the events.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chunkd.catalog.base import Catalog
from chunkd.exceptions import (
    Conflict,
    UploadAborted,
    UploadExpired,
    UploadLocked,
    UploadNotFound,
)
from chunkd.hooks.base import POST_TERMINATE
from chunkd.hooks.dispatcher import Hooks, payload_of
from chunkd.protocol.tus.headers import is_valid_upload_id
from chunkd.storage.base import Storage, SupportsDownload
from chunkd.uploads.appending import Appending
from chunkd.uploads.creating import Creating
from chunkd.uploads.events import ABORTED, Event, EventBus, ProgressMeter
from chunkd.uploads.finishing import Finisher
from chunkd.uploads.frontier import Frontiers
from chunkd.uploads.hashing import DigestCache
from chunkd.uploads.inspection import Inspector
from chunkd.uploads.locking import Locker, MemoryLocker
from chunkd.uploads.models import OPEN_STATES, Upload, UploadState
from chunkd.uploads.peers import Peers
from chunkd.uploads.receiving import BodyInterrupted, RateFloor
from chunkd.uploads.sessions import Sessions
from chunkd.validation.sniff import ContentPolicy

__all__ = ["BodyInterrupted", "ServiceConfig", "UploadService"]


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    max_size: int = 100 * 1024**3
    expiry: float = 24 * 3600.0
    durable: bool = True
    digests: tuple[str, ...] = ("sha256",)
    idle_timeout: float = 60.0
    lock_wait: float = 10.0
    min_rate: float = 0.0  # bytes/s over min_rate_window; 0: no floor
    min_rate_window: float = 60.0
    # per-owner quotas; 0: no limit
    max_open_uploads: int = 0
    max_bytes_in_flight: int = 0
    max_bytes_stored: int = 0

    def rate_floor(self) -> RateFloor | None:
        if self.min_rate <= 0:
            return None
        return RateFloor(self.min_rate, self.min_rate_window, time.monotonic)


class UploadService:
    def __init__(
        self,
        catalog: Catalog,
        storage: Storage,
        config: ServiceConfig | None = None,
        *,
        locker: Locker | None = None,
        clock: Callable[[], float] = time.time,
        inspector: Inspector | None = None,
        events: EventBus | None = None,
        hooks: Hooks | None = None,
        peers: Peers | None = None,
    ) -> None:
        self.catalog = catalog
        self.peers = peers  # the other workers of this server (``--workers``), if any
        self.storage = storage
        self.config = config or ServiceConfig()
        self.locker = locker or MemoryLocker()
        self.clock = clock
        self.digests = DigestCache(self.config.digests)
        self.inspector = inspector or Inspector(ContentPolicy(None))
        self.events = events or EventBus()
        self.hooks = hooks or Hooks([])
        self.progress = ProgressMeter(self.events)
        self.swept_bytes = 0  # reclaimed by the expiry sweeper, for the metrics
        self.stopping = False  # begin_shutdown was called
        self.finisher = Finisher(
            catalog,
            storage,
            self.digests,
            clock,
            self.inspector,
            self.config.expiry,
            self.events,
            self.hooks,
        )
        self.frontiers = Frontiers(self)
        self.sessions = Sessions(self)
        creating = Creating(self)
        # the operations, each kept in its own module: creating.py, appending.py, sessions.py
        self.create = creating.create
        self.concatenate = creating.concatenate
        self.append = Appending(self).append

    # -- reading ---------------------------------------------------------------------------

    async def get(self, upload_id: str, *, owner: str | None = None) -> Upload:
        """The live upload, or the error a client should see for it (404, 410)."""
        upload = await self.catalog.get(upload_id) if is_valid_upload_id(upload_id) else None
        if upload is None or (owner is not None and upload.owner != owner):
            raise UploadNotFound(f"upload {upload_id!r} does not exist")
        if upload.state is UploadState.ABORTED:
            raise UploadAborted(f"upload {upload_id} was terminated")
        if upload.state is UploadState.EXPIRED or self._is_expired(upload):
            raise UploadExpired(f"upload {upload_id} has expired")
        return upload

    def _is_expired(self, upload: Upload) -> bool:
        return upload.expires_at is not None and upload.expires_at <= self.clock()

    def read(self, upload: Upload, start: int, stop: int) -> AsyncIterator[bytes]:
        if not isinstance(self.storage, SupportsDownload):
            raise UploadNotFound("this storage backend does not serve downloads")
        return self.storage.read(upload.storage, start, stop)

    async def commit(
        self, upload: Upload, expect: Mapping[str, Any], change: Mapping[str, Any], **more: Any
    ) -> Upload:
        """Compare-and-set ``upload``'s record; a lost race is a 409 the client may retry."""
        updated = await self.catalog.compare_and_set(upload.id, expect, {**change, **more})
        if updated is None:
            raise Conflict(f"upload {upload.id} changed under this request; retry")
        return updated

    # -- ending ----------------------------------------------------------------------------

    async def terminate(self, upload_id: str, *, owner: str | None = None) -> None:
        """Abort an upload (in any state) and remove its bytes; a tombstone answers 410."""
        async with self.locker.hold(upload_id, wait=self.config.lock_wait):
            upload = await self.get(upload_id, owner=owner)
            now = self.clock()
            await self.commit(
                upload,
                {"state": upload.state},
                {"state": UploadState.ABORTED},
                updated_at=now,
                expires_at=now + self.config.expiry,
            )
            self.digests.forget(upload_id)
            self.progress.forget(upload_id)
            await self.storage.delete(upload.storage)
            self.events.publish(Event(ABORTED, upload_id, upload.owner))
            self.hooks.tell(POST_TERMINATE, payload_of(upload), upload_id)

    def begin_shutdown(self) -> int:
        """The server is stopping: requests reading a body stop and save what they received,
        event streams end. Returns how many requests were asked to stop."""
        self.stopping = True
        self.events.close()
        return self.locker.release_all()

    async def recover(self, states: frozenset[UploadState] = OPEN_STATES) -> int:
        """Finish what a crash interrupted: uploads fully received but not yet complete.

        At start-up both open states are looked at; the periodic retry (a scanner or hook
        that was down) needs only ``verifying`` ones, not every upload still receiving.
        """
        finished = 0
        for upload in await self.catalog.list_by_state(states, limit=10_000):
            if upload.state is UploadState.VERIFYING or upload.is_finished:
                try:  # held elsewhere: another worker or instance is finishing it right now
                    async with self.locker.hold(upload.id, wait=0.5):
                        await self.finisher.finish(upload)
                except UploadLocked:
                    continue
                finished += 1
        return finished
