"""Finishing an upload exactly once: claim it, settle its digests, seal its bytes.

``receiving → verifying`` is a compare-and-set, so of two requests (or two server instances)
racing to finish one upload, one claims it and the other sees the claim. A crash while
``verifying`` is picked up again by ``UploadService.recover`` at start-up; every step here is
safe to repeat.
"""

from __future__ import annotations

from collections.abc import Callable

from chunkd.catalog.base import Catalog
from chunkd.exceptions import ChunkdError, DigestMismatch, ServiceUnavailable, error_record
from chunkd.hooks.base import PRE_FINISH
from chunkd.hooks.dispatcher import Hooks, payload_of
from chunkd.storage.base import Storage, SupportsDownload
from chunkd.uploads.events import COMPLETED, FAILED, VERIFYING, Event, EventBus
from chunkd.uploads.hashing import DigestCache, hash_stored, hex_digests
from chunkd.uploads.inspection import Inspector
from chunkd.uploads.models import Upload, UploadState


class Finisher:
    def __init__(
        self,
        catalog: Catalog,
        storage: Storage,
        digests: DigestCache,
        clock: Callable[[], float],
        inspector: Inspector,
        retention: float,
        events: EventBus,
        hooks: Hooks,
    ) -> None:
        self._catalog = catalog
        self._storage = storage
        self._digests = digests
        self._clock = clock
        self._inspector = inspector
        self._retention = retention  # how long a failed upload's record is kept
        self._events = events
        self._hooks = hooks

    async def finish(self, upload: Upload) -> Upload:
        if upload.state is UploadState.RECEIVING:
            claimed = await self._catalog.compare_and_set(
                upload.id,
                {"state": UploadState.RECEIVING, "offset": upload.offset},
                {"state": UploadState.VERIFYING, "updated_at": self._clock()},
            )
            if claimed is None:  # someone else finished it, or it changed: report what is
                current = await self._catalog.get(upload.id)
                return current if current is not None else upload
            upload = claimed
            if not upload.partial:
                self._events.publish(Event(VERIFYING, upload.id, upload.owner))
        if upload.state is not UploadState.VERIFYING or upload.length is None:
            return upload
        length = upload.length
        sealed = False
        if not self._storage.readable_before_finish:
            # e.g. S3: bytes can be read back only once sealed, and checking reads them; so
            # seal first (sealing is safe to repeat) and keep the sealed handle
            handle = await self._storage.finish(upload.storage, length)
            updated = await self._catalog.compare_and_set(
                upload.id, {"state": UploadState.VERIFYING}, {"storage": handle}
            )
            upload = updated or upload.replace(storage=handle)
            sealed = True
        digests = await self._settle_digests(upload, length)
        wrong = {
            name: {"expected": value, "actual": digests.get(name)}
            for name, value in upload.expected_digests.items()
            if digests.get(name) != value
        }
        try:
            if wrong:
                raise DigestMismatch(
                    "the file differs from the one declared: "
                    + ", ".join(
                        f"{name} expected {pair['expected']} got {pair['actual']}"
                        for name, pair in wrong.items()
                    )
                )
            sniffed = await self._inspector.inspect(self._storage, upload)
            if not upload.partial and self._hooks.wants(PRE_FINISH):
                proposal = {**payload_of(upload), "digests": digests, "sniffed_type": sniffed}
                await self._hooks.ask(PRE_FINISH, proposal, upload.id)
        except ServiceUnavailable:
            return upload  # e.g. the scanner is down: stay verifying, retried by recovery
        except ChunkdError as error:
            return await self._fail(upload, digests, error)
        if not sealed:
            handle = await self._storage.finish(upload.storage, length)
        else:
            handle = upload.storage
        done = await self._catalog.compare_and_set(
            upload.id,
            {"state": UploadState.VERIFYING},
            {
                "state": UploadState.COMPLETE,
                "digests": digests,
                "sniffed_type": sniffed,
                "storage": handle,
                "updated_at": self._clock(),
                # A finished upload stays until it is deleted, except a partial one, which
                # only waits to be joined and expires like any unfinished upload.
                "expires_at": upload.expires_at if upload.partial else None,
            },
        )
        if done is not None and not done.partial:
            data = {"size": done.length, "digests": digests, "sniffed_type": sniffed}
            self._events.publish(Event(COMPLETED, done.id, done.owner, data))
        current = done or await self._catalog.get(upload.id)
        return current if current is not None else upload

    async def _fail(self, upload: Upload, digests: dict[str, str], error: ChunkdError) -> Upload:
        """Refused for good: record why, and free the bytes (nothing will complete them)."""
        now = self._clock()
        failed = await self._catalog.compare_and_set(
            upload.id,
            {"state": UploadState.VERIFYING},
            {
                "state": UploadState.FAILED,
                "digests": digests,
                "error": error_record(error),
                "updated_at": now,
                "expires_at": now + self._retention,
            },
        )
        if failed is not None:
            self._digests.forget(upload.id)
            await self._storage.delete(upload.storage)
            data = {"code": error.code, "reason": error.message}
            self._events.publish(Event(FAILED, upload.id, upload.owner, data))
        current = failed or await self._catalog.get(upload.id)
        return current if current is not None else upload

    async def _settle_digests(self, upload: Upload, length: int) -> dict[str, str]:
        algorithms = self._digests.for_upload(upload.expected_digests)
        if upload.partial or not algorithms:
            return {}
        hashers = self._digests.take(upload.id, length)
        if hashers is not None and set(hashers) == set(algorithms):
            return hex_digests(hashers)
        recorded = self._digests.recorded(upload)  # by another worker, with the offset
        if recorded is not None:
            return recorded
        if not isinstance(self._storage, SupportsDownload):
            return {}
        # the running state was lost (restart, concatenation): read the bytes back once
        return await hash_stored(self._storage, upload.storage, length, algorithms)
