"""Upload sessions: parts in any order and in parallel, written in place, verified at the end.

A session is an ``Upload`` with a ``part_size``. Part *n* is written straight to its final
offset ``n * part_size``, so completing copies nothing. Parts of one upload are received
concurrently, each under its own lock; only state changes take the upload's lock.

Behind the parts, a per-upload *frontier* (:mod:`chunkd.uploads.frontier`) advances over the
contiguous prefix of received parts, reading them back into the whole-file digests and moving
the record's ``offset``. Completing then only hashes what the frontier has not reached.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import blake3

from chunkd.exceptions import (
    DigestConflict,
    DigestMismatch,
    MissingParts,
    NotASession,
    PartChecksumMismatch,
    PartConflict,
    PartOutOfRange,
    PartSizeMismatch,
    PartTakenOver,
    RequestTooSlow,
    ServiceUnavailable,
    UploadNotReceiving,
    UploadTooLarge,
    ValidationFailed,
    error_from_record,
)
from chunkd.protocol.checksums import Checksum, Hasher
from chunkd.protocol.parts import (
    PartSizeError,
    choose_part_size,
    missing_ranges,
    part_count,
    part_span,
)
from chunkd.storage.base import SupportsDownload
from chunkd.uploads.hashing import hash_stored
from chunkd.uploads.models import Part, Upload, UploadState
from chunkd.uploads.receiving import receive

if TYPE_CHECKING:
    from chunkd.uploads.service import UploadService


#: How a part's identity is hashed (to tell a harmless re-send from different bytes): BLAKE3 is
#: cryptographic like SHA-256 and about four times cheaper, which matters twice per byte since
#: the whole-file SHA-256 is computed as well.
PART_DIGEST = "blake3"
#: How often, at most, a stream of parts renews the upload's expiry (seconds).
_RENEW_EVERY = 10.0


def _part_hasher(algorithm: str) -> Hasher:
    return blake3.blake3() if algorithm == "blake3" else hashlib.new(algorithm)


class Sessions:
    def __init__(self, service: UploadService) -> None:
        self._service = service
        # live progress of session uploads: bytes of stored parts, and of parts in flight
        self._stored: dict[str, int] = {}
        self._counted: dict[str, float] = {}  # when ``_stored`` was last read from the catalog
        self._inflight: dict[str, dict[int, int]] = {}

    async def create(
        self,
        *,
        size: int,
        metadata: Mapping[str, str | None],
        owner: str | None = None,
        part_size: int | None = None,
        expected_digests: dict[str, str] | None = None,
    ) -> Upload:
        if size > self._service.config.max_size:
            raise UploadTooLarge(
                f"size {size} is over the maximum of {self._service.config.max_size} bytes"
            )
        try:
            chosen = choose_part_size(size, part_size, minimum=self._service.storage.min_part_size)
        except PartSizeError as error:
            raise ValidationFailed(str(error), details={"field": "part_size"}) from None
        return await self._service.create(
            length=size,
            metadata=metadata,
            owner=owner,
            part_size=chosen,
            expected_digests=expected_digests,
        )

    async def get(self, upload_id: str, *, owner: str | None = None) -> Upload:
        upload = await self._service.get(upload_id, owner=owner)
        if not upload.is_session:
            raise NotASession("this upload was created with tus; it has no parts")
        return upload

    async def received(self, upload: Upload) -> tuple[list[Part], list[list[int]]]:
        """The received parts and the missing ones, as ``[first, last]`` runs."""
        if not upload.is_session or upload.length is None or upload.part_size is None:
            return [], []
        parts = await self._service.catalog.list_parts(upload.id)
        count = part_count(upload.length, upload.part_size)
        return parts, missing_ranges((part.index for part in parts), count)

    # -- parts -----------------------------------------------------------------------------

    async def put_part(
        self,
        upload_id: str,
        index: int,
        body: AsyncIterator[bytes],
        *,
        owner: str | None = None,
        content_length: int | None = None,
        checksums: Sequence[Checksum] = (),
    ) -> tuple[Part, bool]:
        """Store part ``index``; returns it and whether it is new (``False``: same bytes again)."""
        service = self._service
        upload = await self.get(upload_id, owner=owner)
        if upload.state is not UploadState.RECEIVING:
            raise UploadNotReceiving(f"upload {upload_id} is {upload.state}")
        assert upload.length is not None and upload.part_size is not None
        count = part_count(upload.length, upload.part_size)
        if not 0 <= index < count:
            raise PartOutOfRange(f"part {index} is outside 0..{count - 1}")
        start, size = part_span(index, upload.length, upload.part_size)
        if content_length is not None and content_length != size:
            raise PartSizeMismatch(f"part {index} must be {size} bytes, not {content_length}")
        async with service.locker.hold(
            f"{upload_id}/{index}", wait=service.config.lock_wait
        ) as lease:
            existing = await service.catalog.get_part(upload_id, index)
            if existing is not None:
                return existing, await self._same_again(existing, body, size)
            digest = _part_hasher(PART_DIGEST)
            # part 0 holds the head of the file: its type is judged before it is stored
            screen = service.inspector.screen(upload, 0) if index == 0 else None
            on_bytes = await self._progress_of(upload, index)
            result = await receive(
                service.storage,
                upload.storage,
                start,
                body,
                lease=lease,
                limit=size,
                hashers=[digest],
                checksums=checksums,
                durable=service.config.durable,
                idle_timeout=service.config.idle_timeout,
                too_much=lambda: PartSizeMismatch(f"part {index} is longer than {size} bytes"),
                floor=service.config.rate_floor(),
                screen=screen,
                on_bytes=on_bytes,
            )
            self._inflight.get(upload_id, {}).pop(index, None)
            if result.too_slow:
                raise RequestTooSlow(f"part {index} arrived too slowly; nothing was stored")
            if result.received != size and result.interrupted:  # a part counts whole or not
                ended = f"after {result.received} of {size} bytes; nothing was stored"
                if lease.release_requested and service.stopping:
                    raise ServiceUnavailable(f"the server is stopping: part {index} ended {ended}")
                if lease.release_requested:
                    raise PartTakenOver(f"another request for part {index} took over {ended}")
                raise RequestTooSlow(f"part {index} stalled or was cut off {ended}")
            if result.received != size:
                raise PartSizeMismatch(
                    f"part {index} must be {size} bytes; {result.received} arrived"
                )
            if not result.checksums_ok:
                raise PartChecksumMismatch(f"part {index} does not match its declared digest")
            part = Part(index, size, f"{PART_DIGEST}:{digest.digest().hex()}")
            if not await service.catalog.add_part(upload_id, part):
                raise PartConflict(f"part {index} was stored by another request meanwhile")
            if upload_id in self._stored:
                self._stored[upload_id] += size
            now = service.clock()
            sniffed = {"sniffed_type": screen.sniffed} if screen and screen.sniffed else {}
            if sniffed or now - upload.updated_at >= _RENEW_EVERY:
                # activity renews the expiry, at most every few seconds: a commit (a sync of
                # the catalog's log) per part would cost more than the renewal is worth
                await service.catalog.compare_and_set(
                    upload_id,
                    {"state": UploadState.RECEIVING},
                    {"updated_at": now, "expires_at": now + service.config.expiry, **sniffed},
                )
        service.frontiers.stored(upload)
        return part, True

    async def _progress_of(self, upload: Upload, index: int) -> Callable[[int], None] | None:
        """A byte counter for part ``index`` feeding the upload's progress events."""
        meter = self._service.progress
        if not self._service.events.subscribers:
            return None
        # with other workers storing parts too, what is stored is counted again now and then
        now = asyncio.get_running_loop().time()
        shared = (
            self._service.frontiers.relay is not None
            and now - self._counted.get(upload.id, 0.0) >= 1.0
        )
        if upload.id not in self._stored or shared:
            parts = await self._service.catalog.list_parts(upload.id)
            self._stored[upload.id] = sum(part.size for part in parts)
            self._counted[upload.id] = now
        inflight = self._inflight.setdefault(upload.id, {})

        def on_bytes(count: int) -> None:
            inflight[index] = count
            total = self._stored.get(upload.id, 0) + sum(inflight.values())
            meter.update(upload.id, upload.owner, total, upload.length)

        return on_bytes

    def forget(self, upload_id: str) -> None:
        self._stored.pop(upload_id, None)
        self._counted.pop(upload_id, None)
        self._inflight.pop(upload_id, None)

    async def _same_again(self, existing: Part, body: AsyncIterator[bytes], size: int) -> bool:
        """A part sent again: hash it without storing; the same bytes are a harmless retry."""
        algorithm, _, expected = existing.digest.partition(":")
        digest = _part_hasher(algorithm)
        received = 0
        async for chunk in body:
            received += len(chunk)
            if received > size:
                break
            await asyncio.to_thread(digest.update, chunk)
        if received != size or digest.digest().hex() != expected:
            raise PartConflict(f"part {existing.index} was already received with other bytes")
        return False

    # -- completing ------------------------------------------------------------------------

    async def complete(
        self,
        upload_id: str,
        *,
        owner: str | None = None,
        declared: Mapping[str, str] | None = None,
    ) -> Upload:
        """Verify every part is there and the whole-file digests match, then finish.

        ``declared`` are whole-file digests the client computed while sending, added to any
        declared at creation (they must agree). Completing a completed upload answers the same
        upload again; a failed one, the same error.
        """
        service = self._service
        async with service.locker.hold(upload_id, wait=service.config.lock_wait):
            upload = await self.get(upload_id, owner=owner)
            if declared:
                upload = await self._declare(upload, dict(declared))
            if upload.state is UploadState.RECEIVING:
                _, missing = await self.received(upload)
                if missing:
                    raise MissingParts(
                        f"{sum(last - first + 1 for first, last in missing)} parts are missing",
                        details={"missing_parts": missing},
                    )
                await service.frontiers.settle(upload)
                upload = await service.frontiers.advance(upload_id, alone=True) or upload
                upload = await service.finisher.finish(upload)
                self.forget(upload_id)
            elif upload.state is UploadState.VERIFYING:
                upload = await service.finisher.finish(upload)
            if upload.state is UploadState.FAILED:
                error = error_from_record(upload.error or "UNPROCESSABLE: the upload failed")
                if isinstance(error, DigestMismatch):
                    error.details = {
                        "expected": upload.expected_digests,
                        "actual": upload.digests,
                    }
                raise error
            return upload

    async def _declare(self, upload: Upload, declared: dict[str, str]) -> Upload:
        """Record digests declared at complete; refuse ones that contradict what is known."""
        known = upload.digests if upload.state is UploadState.COMPLETE else {}
        known = {**known, **upload.expected_digests}
        if upload.state is UploadState.COMPLETE and set(declared) - set(known):
            known = {**known, **await self._hash_complete(upload, set(declared) - set(known))}
        clashing = sorted(
            name for name, value in declared.items() if known.get(name, value) != value
        )
        if clashing:
            raise DigestConflict(
                f"the {', '.join(clashing)} declared now differs from the one already known",
                details={"declared": declared, "known": {name: known[name] for name in clashing}},
            )
        unfinished = upload.state in (UploadState.RECEIVING, UploadState.VERIFYING)
        if not unfinished or declared.items() <= upload.expected_digests.items():
            return upload
        changed = await self._service.catalog.compare_and_set(
            upload.id,
            {"state": upload.state},
            {"expected_digests": {**upload.expected_digests, **declared}},
        )
        return changed or upload

    async def _hash_complete(self, upload: Upload, algorithms: set[str]) -> dict[str, str]:
        """Digests of a completed upload that were not computed when it completed (a client
        declaring one only now): read the stored file once to check it."""
        storage = self._service.storage
        if not isinstance(storage, SupportsDownload) or upload.length is None:
            return {}
        return await hash_stored(storage, upload.storage, upload.length, sorted(algorithms))
