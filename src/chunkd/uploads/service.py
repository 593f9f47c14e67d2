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
"""

from __future__ import annotations

import asyncio
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chunkd.catalog.base import Catalog
from chunkd.exceptions import (
    ChecksumMismatch,
    Conflict,
    FinalUploadImmutable,
    InvalidConcatenation,
    LengthAlreadySet,
    LengthExceeded,
    NotASession,
    OffsetMismatch,
    QuotaExceeded,
    UploadAborted,
    UploadExpired,
    UploadLocked,
    UploadNotFound,
    UploadNotReceiving,
    UploadTooLarge,
    error_from_record,
)
from chunkd.hooks.base import POST_CREATE, POST_RECEIVE, POST_TERMINATE, PRE_CREATE
from chunkd.hooks.dispatcher import Hooks, payload_of
from chunkd.protocol.checksums import Checksum
from chunkd.protocol.tus.headers import is_valid_upload_id
from chunkd.storage.base import Storage, SupportsConcatenation, SupportsDownload
from chunkd.uploads.events import ABORTED, CREATED, Event, EventBus, ProgressMeter
from chunkd.uploads.finishing import Finisher
from chunkd.uploads.hashing import DigestCache
from chunkd.uploads.inspection import Inspector
from chunkd.uploads.locking import Locker, MemoryLocker
from chunkd.uploads.models import OPEN_STATES, Upload, UploadState
from chunkd.uploads.receiving import BodyInterrupted, RateFloor, receive
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
    ) -> None:
        self.catalog = catalog
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
        self.sessions = Sessions(self)
        self._owner_locks: weakref.WeakValueDictionary[str | None, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

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

    # -- creating --------------------------------------------------------------------------

    async def create(
        self,
        *,
        length: int | None,
        metadata: Mapping[str, str | None] | None = None,
        owner: str | None = None,
        partial: bool = False,
        part_size: int | None = None,
        expected_digests: dict[str, str] | None = None,
    ) -> Upload:
        if length is not None and length > self.config.max_size:
            raise UploadTooLarge(
                f"the upload's length {length} is over the maximum of {self.config.max_size} bytes"
            )
        upload = await self._insert(
            length,
            metadata,
            owner,
            partial=partial,
            part_size=part_size,
            expected_digests=expected_digests,
        )
        if upload.is_finished:  # an empty file is complete on creation
            upload = await self.finisher.finish(upload)
        return upload

    async def _insert(
        self,
        length: int | None,
        metadata: Mapping[str, str | None] | None,
        owner: str | None,
        *,
        partial: bool = False,
        concat_parts: tuple[str, ...] | None = None,
        part_size: int | None = None,
        expected_digests: dict[str, str] | None = None,
    ) -> Upload:
        async with self._owner_lock(owner):
            await self._check_quotas(owner, length)
            return await self._insert_unchecked(
                length,
                metadata,
                owner,
                partial=partial,
                concat_parts=concat_parts,
                part_size=part_size,
                expected_digests=expected_digests,
            )

    def _owner_lock(self, owner: str | None) -> asyncio.Lock:
        lock = self._owner_locks.get(owner)
        if lock is None:
            lock = self._owner_locks[owner] = asyncio.Lock()
        return lock

    async def _check_quotas(self, owner: str | None, length: int | None) -> None:
        config = self.config
        if not (config.max_open_uploads or config.max_bytes_in_flight or config.max_bytes_stored):
            return
        usage = await self.catalog.usage(owner)
        adding = length or 0
        checks = (
            ("open_uploads", config.max_open_uploads, usage.open_uploads + 1),
            ("bytes_in_flight", config.max_bytes_in_flight, usage.open_bytes + adding),
            (
                "bytes_stored",
                config.max_bytes_stored,
                usage.stored_bytes + usage.open_bytes + adding,
            ),
        )
        for quota, limit, needed in checks:
            if limit and needed > limit:
                raise QuotaExceeded(
                    f"this upload would take {quota} to {needed}, over the quota of {limit}",
                    details={"quota": quota, "limit": limit, "needed": needed},
                )

    async def _insert_unchecked(
        self,
        length: int | None,
        metadata: Mapping[str, str | None] | None,
        owner: str | None,
        *,
        partial: bool,
        concat_parts: tuple[str, ...] | None,
        part_size: int | None,
        expected_digests: dict[str, str] | None,
    ) -> Upload:
        upload_id = secrets.token_hex(16)
        if not partial and self.hooks.wants(PRE_CREATE):
            proposal = {"id": upload_id, "owner": owner, "size": length, "metadata": metadata}
            answer = await self.hooks.ask(PRE_CREATE, proposal, upload_id)
            if isinstance(answer.get("metadata"), dict):  # the hook may change the metadata
                metadata = {
                    str(k): None if v is None else str(v) for k, v in answer["metadata"].items()
                }
        handle = await self.storage.create(upload_id, length, part_size)
        now = self.clock()
        upload = Upload(
            id=upload_id,
            length=length,
            owner=owner,
            metadata=dict(metadata or {}),
            partial=partial,
            concat_parts=concat_parts,
            part_size=part_size,
            expected_digests=dict(expected_digests or {}),
            storage=handle,
            created_at=now,
            updated_at=now,
            expires_at=now + self.config.expiry,
        )
        try:
            await self.catalog.insert(upload)
        except BaseException:
            await self.storage.delete(handle)
            raise
        if not partial:
            self.events.publish(
                Event(CREATED, upload.id, owner, {"size": length, **upload.metadata})
            )
            self.hooks.tell(POST_CREATE, payload_of(upload), upload.id)
        return upload

    async def concatenate(
        self,
        part_ids: tuple[str, ...],
        *,
        metadata: Mapping[str, str | None] | None = None,
        owner: str | None = None,
    ) -> Upload:
        """Create a final upload joining finished partial uploads, in order; the storage joins
        them (in the kernel for local disk), never through Python memory."""
        if not isinstance(self.storage, SupportsConcatenation):
            raise InvalidConcatenation("this storage backend cannot concatenate uploads")
        parts = []
        for part_id in part_ids:
            try:
                part = await self.get(part_id, owner=owner)
            except UploadNotFound:
                raise InvalidConcatenation(f"partial upload {part_id} does not exist") from None
            if not part.partial:
                raise InvalidConcatenation(f"upload {part_id} is not a partial upload")
            if part.state is not UploadState.COMPLETE or part.length is None:
                raise InvalidConcatenation(f"partial upload {part_id} is not finished")
            parts.append((part.storage, part.length))
        length = sum(part_length for _, part_length in parts)
        if length > self.config.max_size:
            raise UploadTooLarge(f"the joined upload ({length} bytes) is over the maximum")
        upload = await self._insert(length, metadata, owner, concat_parts=tuple(part_ids))
        await self.storage.concatenate(upload.storage, parts)
        joined = await self._commit(upload, {"offset": 0}, {"offset": length})
        joined = await self.finisher.finish(joined)
        if joined.state is UploadState.FAILED and joined.error:
            raise error_from_record(joined.error)
        return joined

    # -- appending -------------------------------------------------------------------------

    async def append(
        self,
        upload_id: str,
        offset: int,
        body: AsyncIterator[bytes],
        *,
        owner: str | None = None,
        content_length: int | None = None,
        checksum: Checksum | None = None,
        declare_length: int | None = None,
    ) -> Upload:
        """Write ``body`` at ``offset`` and acknowledge what was stored; returns the record."""
        async with self.locker.hold(upload_id, wait=self.config.lock_wait) as lease:
            upload = await self.get(upload_id, owner=owner)
            if upload.is_final:
                raise FinalUploadImmutable("a final upload cannot be appended to")
            if upload.state is not UploadState.RECEIVING:
                raise UploadNotReceiving(f"upload {upload_id} is {upload.state}")
            if offset != upload.offset:
                raise OffsetMismatch(
                    f"Upload-Offset {offset} does not match the upload's offset {upload.offset}"
                )
            if declare_length is not None:
                upload = await self._declare_length(upload, declare_length)
            limit = self._room(upload)
            if content_length is not None and content_length > limit:
                raise self._too_much(upload)
            if upload.is_session:
                raise NotASession("a session upload takes parts (PUT), not appends")
            hashers = (
                None
                if upload.partial
                else self.digests.start(
                    upload.id, offset, self.digests.for_upload(upload.expected_digests)
                )
            )
            screen = self.inspector.screen(upload, offset)
            result = await receive(
                self.storage,
                upload.storage,
                offset,
                body,
                lease=lease,
                limit=limit,
                hashers=(hashers or {}).values(),
                checksums=[checksum] if checksum is not None else [],
                durable=self.config.durable,
                idle_timeout=self.config.idle_timeout,
                too_much=lambda: self._too_much(upload),
                floor=self.config.rate_floor(),
                screen=screen,
                on_bytes=lambda count: self.progress.update(
                    upload.id, upload.owner, offset + count, upload.length
                ),
            )
            if checksum is not None and (result.interrupted or not result.checksums_ok):
                if result.interrupted:  # an unverifiable prefix counts for nothing
                    return upload
                raise ChecksumMismatch(f"the body does not match its {checksum.algorithm}")
            if result.received == 0 and result.interrupted and lease.release_requested:
                # taken over before a single byte: this request did nothing, so it must not
                # answer success as well as the request that took over
                raise UploadLocked("another request took over this upload before any byte")
            if result.received == 0:
                return await self.finisher.finish(upload) if upload.is_finished else upload
            new_offset = offset + result.received
            now = self.clock()
            upload = await self._commit(
                upload,
                {"offset": offset, "state": UploadState.RECEIVING},
                {"offset": new_offset},
                updated_at=now,
                expires_at=now + self.config.expiry,
                **({"sniffed_type": screen.sniffed} if screen.sniffed else {}),
            )
            self.digests.commit(upload.id, new_offset, hashers)
            if not upload.partial:
                self.hooks.tell(POST_RECEIVE, payload_of(upload), upload.id, every=1.0)
            if upload.is_finished:
                upload = await self.finisher.finish(upload)
                if upload.state is UploadState.FAILED and upload.error:
                    raise error_from_record(upload.error)
            return upload

    def _room(self, upload: Upload) -> int:
        end = upload.length if upload.length is not None else self.config.max_size
        return end - upload.offset

    def _too_much(self, upload: Upload) -> Exception:
        if upload.length is None:
            return UploadTooLarge(f"the upload would pass the maximum of {self.config.max_size}")
        return LengthExceeded(f"the body passes the upload's length of {upload.length} bytes")

    async def _declare_length(self, upload: Upload, length: int) -> Upload:
        if upload.length is not None:
            if upload.length == length:
                return upload
            raise LengthAlreadySet(f"the upload's length is already {upload.length}")
        if length > self.config.max_size:
            raise UploadTooLarge(f"Upload-Length {length} is over the maximum")
        if length < upload.offset:
            raise LengthExceeded(f"{upload.offset} bytes were already received")
        return await self._commit(upload, {"length": None}, {"length": length})

    async def _commit(
        self, upload: Upload, expect: Mapping[str, Any], change: Mapping[str, Any], **more: Any
    ) -> Upload:
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
            await self._commit(
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
                async with self.locker.hold(upload.id, wait=self.config.lock_wait):
                    await self.finisher.finish(upload)
                finished += 1
        return finished
