"""Appending to an upload (tus PATCH): at its acknowledged offset, within its length, under
its lock; what arrived is acknowledged once stored (and synced), then the upload may finish."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from chunkd.exceptions import (
    ChecksumMismatch,
    FinalUploadImmutable,
    LengthAlreadySet,
    LengthExceeded,
    NotASession,
    OffsetMismatch,
    UploadLocked,
    UploadNotReceiving,
    UploadTooLarge,
    error_from_record,
)
from chunkd.hooks.base import POST_RECEIVE
from chunkd.hooks.dispatcher import payload_of
from chunkd.protocol.checksums import Checksum
from chunkd.uploads.models import Upload, UploadState
from chunkd.uploads.receiving import receive

if TYPE_CHECKING:
    from chunkd.uploads.service import UploadService


class Appending:
    def __init__(self, service: UploadService) -> None:
        self._service = service

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
        async with self._service.locker.hold(
            upload_id, wait=self._service.config.lock_wait
        ) as lease:
            upload = await self._service.get(upload_id, owner=owner)
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
                else self._service.digests.start(
                    upload.id, offset, self._service.digests.for_upload(upload.expected_digests)
                )
            )
            screen = self._service.inspector.screen(upload, offset)
            result = await receive(
                self._service.storage,
                upload.storage,
                offset,
                body,
                lease=lease,
                limit=limit,
                hashers=(hashers or {}).values(),
                checksums=[checksum] if checksum is not None else [],
                durable=self._service.config.durable,
                idle_timeout=self._service.config.idle_timeout,
                too_much=lambda: self._too_much(upload),
                floor=self._service.config.rate_floor(),
                screen=screen,
                on_bytes=lambda count: self._service.progress.update(
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
                return await self._service.finisher.finish(upload) if upload.is_finished else upload
            new_offset = offset + result.received
            now = self._service.clock()
            upload = await self._service.commit(
                upload,
                {"offset": offset, "state": UploadState.RECEIVING},
                {"offset": new_offset},
                updated_at=now,
                expires_at=now + self._service.config.expiry,
                **({"sniffed_type": screen.sniffed} if screen.sniffed else {}),
            )
            frontiers, digests = self._service.frontiers, self._service.digests
            behind = (  # another worker may hold running digests this one lacks
                hashers is None
                and frontiers.relay is not None
                and not upload.partial
                and bool(digests.for_upload(upload.expected_digests))
            )
            if behind:  # it catches up
                frontiers.behind(upload.id)
            else:
                digests.commit(upload.id, new_offset, hashers)
            if not upload.partial:
                self._service.hooks.tell(POST_RECEIVE, payload_of(upload), upload.id, every=1.0)
            if upload.is_finished:
                if behind:
                    await frontiers.settle(upload)
                    upload = await self._service.catalog.get(upload.id) or upload
                upload = await self._service.finisher.finish(upload)
                if upload.state is UploadState.FAILED and upload.error:
                    raise error_from_record(upload.error)
            return upload

    def _room(self, upload: Upload) -> int:
        end = upload.length if upload.length is not None else self._service.config.max_size
        return end - upload.offset

    def _too_much(self, upload: Upload) -> Exception:
        if upload.length is None:
            return UploadTooLarge(
                f"the upload would pass the maximum of {self._service.config.max_size}"
            )
        return LengthExceeded(f"the body passes the upload's length of {upload.length} bytes")

    async def _declare_length(self, upload: Upload, length: int) -> Upload:
        if upload.length is not None:
            if upload.length == length:
                return upload
            raise LengthAlreadySet(f"the upload's length is already {upload.length}")
        if length > self._service.config.max_size:
            raise UploadTooLarge(f"Upload-Length {length} is over the maximum")
        if length < upload.offset:
            raise LengthExceeded(f"{upload.offset} bytes were already received")
        return await self._service.commit(upload, {"length": None}, {"length": length})
