"""Creating uploads: quotas, the pre-create hook, the record with its storage; and joining
finished partial uploads into a final one (tus concatenation)."""

from __future__ import annotations

import asyncio
import secrets
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING

from chunkd.exceptions import (
    InvalidConcatenation,
    QuotaExceeded,
    UploadNotFound,
    UploadTooLarge,
    error_from_record,
)
from chunkd.hooks.base import POST_CREATE, PRE_CREATE
from chunkd.hooks.dispatcher import payload_of
from chunkd.storage.base import SupportsConcatenation
from chunkd.uploads.events import CREATED, Event
from chunkd.uploads.models import Upload, UploadState

if TYPE_CHECKING:
    from chunkd.uploads.service import UploadService


class Creating:
    def __init__(self, service: UploadService) -> None:
        self._service = service
        self._owner_locks: weakref.WeakValueDictionary[str | None, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

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
        maximum = self._service.config.max_size
        if length is not None and length > maximum:
            raise UploadTooLarge(
                f"the upload's length {length} is over the maximum of {maximum} bytes"
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
            upload = await self._service.finisher.finish(upload)
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
        config = self._service.config
        if not (config.max_open_uploads or config.max_bytes_in_flight or config.max_bytes_stored):
            return
        usage = await self._service.catalog.usage(owner)
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
        if not partial and self._service.hooks.wants(PRE_CREATE):
            proposal = {"id": upload_id, "owner": owner, "size": length, "metadata": metadata}
            answer = await self._service.hooks.ask(PRE_CREATE, proposal, upload_id)
            if isinstance(answer.get("metadata"), dict):  # the hook may change the metadata
                metadata = {
                    str(k): None if v is None else str(v) for k, v in answer["metadata"].items()
                }
        handle = await self._service.storage.create(upload_id, length, part_size)
        now = self._service.clock()
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
            expires_at=now + self._service.config.expiry,
        )
        try:
            await self._service.catalog.insert(upload)
        except BaseException:
            await self._service.storage.delete(handle)
            raise
        if not partial:
            self._service.events.publish(
                Event(CREATED, upload.id, owner, {"size": length, **upload.metadata})
            )
            self._service.hooks.tell(POST_CREATE, payload_of(upload), upload.id)
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
        if not isinstance(self._service.storage, SupportsConcatenation):
            raise InvalidConcatenation("this storage backend cannot concatenate uploads")
        parts = []
        for part_id in part_ids:
            try:
                part = await self._service.get(part_id, owner=owner)
            except UploadNotFound:
                raise InvalidConcatenation(f"partial upload {part_id} does not exist") from None
            if not part.partial:
                raise InvalidConcatenation(f"upload {part_id} is not a partial upload")
            if part.state is not UploadState.COMPLETE or part.length is None:
                raise InvalidConcatenation(f"partial upload {part_id} is not finished")
            parts.append((part.storage, part.length))
        length = sum(part_length for _, part_length in parts)
        if length > self._service.config.max_size:
            raise UploadTooLarge(f"the joined upload ({length} bytes) is over the maximum")
        upload = await self._insert(length, metadata, owner, concat_parts=tuple(part_ids))
        await self._service.storage.concatenate(upload.storage, parts)
        joined = await self._service.commit(upload, {"offset": 0}, {"offset": length})
        joined = await self._service.finisher.finish(joined)
        if joined.state is UploadState.FAILED and joined.error:
            raise error_from_record(joined.error)
        return joined
