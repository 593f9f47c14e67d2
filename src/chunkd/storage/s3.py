"""S3-compatible storage: one multipart upload per chunkd upload (AWS, MinIO, Ceph RGW, R2).

Part mapping. Every upload has one S3 part size ``ps``, fixed at :meth:`S3Storage.create` and
kept in the handle; byte ``o`` belongs to S3 part ``o // ps + 1``. Part numbers are a function
of offsets, so a retried or resumed write *replaces* a part and never adds one: an upload has
at most ``ceil(length / ps)`` ≤ 10,000 parts however often it is interrupted. A REST session
passes its part size to ``create`` and chunkd part *n* is S3 part *n + 1*; because parts of one
upload arrive in parallel on any instance, they cannot be grouped into bigger S3 parts, so the
backend declares ``min_part_size`` (5 MiB) and the service must choose REST part sizes of at
least that (a smaller one is refused here, loudly). Other uploads get the smallest part that
fits 10,000 parts (5 MiB up to 48 GiB; a deferred length is sized for ``max_size``), because
a tus writer re-puts the part's tail on every ``flush``: its cost grows with the part size.

Spooling. A writer gathers the current part in a local temp file (at most one part being
filled plus one being uploaded per writer, so disk per upload is bounded by ``2 * ps``) and
uploads it with ``UploadPart`` the moment it is whole, with its CRC32C computed as the bytes
stream in. On ``flush`` an unfinished part is put as a *tail object*
``<prefix>.tails/<upload id>/<part number>`` (tusd's ``.part`` object, one per part number, so
parallel REST parts and refused requests never clobber an acknowledged prefix); a writer that
starts mid-part, on any instance, reads that prefix back. The last part of a known length is
uploaded as soon as it is whole; otherwise :meth:`S3Storage.finish` copies it from its tail
with ``UploadPartCopy`` (truncating for free), lists the parts (paged past 1,000) and
completes. Bytes past a declared length (a request the service refuses) are observed, never
stored.

Reading. Parts of an unfinished multipart upload cannot be read, so ``read`` works only after
``finish`` (``readable_before_finish = False``); downloads are ``Range`` GETs. Concatenation
copies every target part that lies inside one source with ``UploadPartCopy`` (server side)
and streams only the parts straddling two sources.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import crc32c

from chunkd.storage.base import (
    ByteWriter,
    Handle,
    Observer,
    Storage,
    SupportsConcatenation,
    SupportsDownload,
)
from chunkd.storage.s3api import S3API, NoSuchUpload, PartInfo
from chunkd.storage.s3boto import BotoS3API

if TYPE_CHECKING:
    from chunkd.settings import Settings

MiB = 1024 * 1024
S3_MIN_PART_SIZE = 5 * MiB
S3_MAX_PART_SIZE = 5 * 1024 * MiB
S3_MAX_PARTS = 10_000


class MissingBytes(Exception):
    """Bytes the caller relies on are not in the store (a tail or a part is gone)."""


class NotReadable(Exception):
    """An unfinished multipart upload cannot be read back."""


class Spool:
    """One part being gathered in an anonymous temp file, with its running CRC32C."""

    def __init__(self, directory: Path | None) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115
        self.size = 0
        self.crc = 0

    def append(self, chunk: bytes) -> None:
        self.file.seek(0, 2)  # an upload reading the file may have moved the position
        self.file.write(chunk)
        self.crc = crc32c.crc32c(chunk, self.crc)
        self.size += len(chunk)

    def rewound(self) -> IO[bytes]:
        self.file.flush()
        self.file.seek(0)
        return self.file

    def close(self) -> None:
        self.file.close()


def part_size_for(length: int | None, requested: int | None, *, max_size: int, minimum: int) -> int:
    """The S3 part size of a new upload, within S3's 5 MiB to 5 GiB and 10,000-part rules."""
    size = max_size if length is None else length
    chosen = requested if requested is not None else _smallest_part(size, minimum)
    if not minimum <= chosen <= S3_MAX_PART_SIZE:
        raise ValueError(f"an S3 part must be {minimum} to {S3_MAX_PART_SIZE} bytes, not {chosen}")
    if -(-size // chosen) > S3_MAX_PARTS:
        raise ValueError(f"{size} bytes in parts of {chosen} would need over {S3_MAX_PARTS}")
    return chosen


def _smallest_part(size: int, minimum: int) -> int:
    """The least part size (in whole MiB above ``minimum``) fitting ``size`` in 10,000 parts:
    small parts keep the tail objects a tus writer re-puts on every ``flush`` small."""
    smallest = -(-size // S3_MAX_PARTS)
    return minimum if smallest <= minimum else -(-smallest // MiB) * MiB


class S3Storage(Storage, SupportsDownload, SupportsConcatenation):
    readable_before_finish = False

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        spool_dir: Path | None = None,
        max_size: int = 100 * 1024 * MiB,
        min_part_size: int = S3_MIN_PART_SIZE,
        checksums: bool = True,
        batch_size: int = 512 * 1024,
        threads: int = 16,
        api: S3API | None = None,
    ) -> None:
        self.min_part_size = min_part_size
        self.prefix = prefix
        self.max_size = max_size
        self.checksums = checksums
        self.batch_size = batch_size
        self.spool_dir = spool_dir
        self._threads = threads
        self._boto_options: dict[str, Any] = {
            "bucket": bucket,
            "endpoint": endpoint,
            "region": region,
            "access_key": access_key,
            "secret_key": secret_key,
            "threads": threads,
        }
        self._api = api
        self._owned: BotoS3API | None = None
        self._executor: ThreadPoolExecutor | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        assert settings.s3_bucket is not None  # the settings refuse storage s3 without one
        secret = settings.s3_secret_key
        return cls(
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint=settings.s3_endpoint,
            region=settings.s3_region,
            access_key=settings.s3_access_key,
            secret_key=None if secret is None else secret.get_secret_value(),
            spool_dir=settings.data_dir / "spool",
            max_size=int(settings.max_size),
        )

    @property
    def api(self) -> S3API:
        if self._api is None:
            raise RuntimeError("the storage is not open")
        return self._api

    async def open(self) -> None:
        if self.spool_dir is not None:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
        if self._api is None:
            # building a boto3 client reads its service model from disk: off the event loop
            self._owned = await asyncio.to_thread(lambda: BotoS3API(**self._boto_options))
            self._api = self._owned
        self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="chunkd-spool")
        await self.api.head_bucket()  # wrong credentials, endpoint or bucket: fail at start

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._owned is not None:
            await asyncio.to_thread(self._owned.close)
            self._owned = self._api = None

    def run(self, function: Any, *args: Any) -> asyncio.Future[Any]:
        """Local disk work (spool files, hashing) on the storage's own thread pool."""
        if self._executor is None:
            raise RuntimeError("the storage is not open")
        return asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def ping(self) -> None:
        await self.api.head_bucket()

    async def create(
        self, upload_id: str, length: int | None, part_size: int | None = None
    ) -> Handle:
        if not upload_id.isalnum():
            raise ValueError("upload ids are alphanumeric")
        size = part_size_for(length, part_size, max_size=self.max_size, minimum=self.min_part_size)
        key = f"{self.prefix}{upload_id}"
        upload = await self.api.create_multipart_upload(key, checksums=self.checksums)
        handle = {
            "key": key,
            "upload": upload,
            "part_size": str(size),
            "tails": f"{self.prefix}.tails/{upload_id}/",
        }
        if length is not None:
            handle["length"] = str(length)
        return handle

    def open_writer(
        self, handle: Handle, offset: int, observers: Sequence[Observer] = ()
    ) -> ByteWriter:
        from chunkd.storage.s3writer import S3Writer

        if "upload" not in handle:
            raise ValueError("this upload is finished; it cannot be written any more")
        return S3Writer(self, handle, offset, observers)

    async def finish(self, handle: Handle, length: int) -> Handle:
        if "upload" not in handle:
            return handle  # finished already (a retry, or another instance)
        key, upload, size = handle["key"], handle["upload"], int(handle["part_size"])
        try:
            if length == 0:  # S3 refuses to complete a multipart upload without parts
                await self.api.abort_multipart_upload(key, upload)
                await self.api.put_object(key, b"", None)
            else:
                await self.api.complete_multipart_upload(
                    key, upload, await self._final_parts(handle, length, size)
                )
        except NoSuchUpload:
            # Completed by an earlier attempt whose reply was lost, or by another instance.
            if await self.api.head_object(key) != length:
                raise
        await self._delete_tails(handle["tails"])
        return {"key": key, "size": str(length)}

    async def _final_parts(self, handle: Handle, length: int, size: int) -> list[PartInfo]:
        count = -(-length // size)
        if count > S3_MAX_PARTS:
            raise ValueError(f"{length} bytes in parts of {size} would need over {S3_MAX_PARTS}")
        listed = await self.api.list_parts(handle["key"], handle["upload"])
        stored = {part.number: part for part in listed}
        wrong = [n for n in range(1, count) if n not in stored or stored[n].size != size]
        if wrong:
            raise MissingBytes(f"parts {wrong[:10]} of {handle['key']} are missing or short")
        last_size = length - (count - 1) * size
        last = stored.get(count)
        if last is None or last.size != last_size:
            tail = f"{handle['tails']}{count}"
            if (await self.api.head_object(tail) or 0) < last_size:
                raise MissingBytes(f"the last {last_size} bytes of {handle['key']} are missing")
            last = await self.api.upload_part_copy(
                handle["key"], handle["upload"], count, tail, 0, last_size - 1
            )
        return [*(stored[n] for n in range(1, count)), last]

    async def delete(self, handle: Handle) -> int:
        reclaimed = 0
        if "upload" in handle:
            try:
                parts = await self.api.list_parts(handle["key"], handle["upload"])
                await self.api.abort_multipart_upload(handle["key"], handle["upload"])
                reclaimed += sum(part.size for part in parts)
            except NoSuchUpload:
                pass
        size = await self.api.head_object(handle["key"])
        if size is not None:  # finished (maybe by an instance that then lost the handle)
            await self.api.delete_objects([handle["key"]])
            reclaimed += size
        if "tails" in handle:
            reclaimed += await self._delete_tails(handle["tails"])
        return reclaimed

    async def _delete_tails(self, prefix: str) -> int:
        tails = await self.api.list_objects(prefix)
        await self.api.delete_objects([key for key, _, _ in tails])
        return sum(size for _, size, _ in tails)

    async def read(self, handle: Handle, start: int, stop: int) -> AsyncIterator[bytes]:
        if "upload" in handle:
            raise NotReadable("an S3 multipart upload cannot be read before it is finished")
        if start < stop:
            async for chunk in self.api.get_object(handle["key"], start, stop - 1):
                yield chunk

    async def concatenate(self, target: Handle, sources: Sequence[tuple[Handle, int]]) -> None:
        from chunkd.storage.s3writer import concatenate

        await concatenate(self, target, sources)

    async def abort_orphans(self, older_than: float) -> int:
        """Abort multipart uploads under the prefix started over ``older_than`` seconds ago,
        and delete tail objects as old whose upload is gone; returns the uploads aborted.

        ``older_than`` must exceed the longest life of an unfinished upload (its expiry), or
        live uploads are lost: only the catalog knows which uploads are live.
        """
        cutoff = time.time() - older_than
        aborted = 0
        live = set()
        for upload in await self.api.list_multipart_uploads(self.prefix):
            if upload.initiated >= cutoff:
                live.add(upload.key)
                continue
            try:
                await self.api.abort_multipart_upload(upload.key, upload.upload_id)
            except NoSuchUpload:
                continue
            aborted += 1
        tails_root = f"{self.prefix}.tails/"
        stale = [
            key
            for key, _, modified in await self.api.list_objects(tails_root)
            if modified < cutoff
            and f"{self.prefix}{key.removeprefix(tails_root).split('/')[0]}" not in live
        ]
        await self.api.delete_objects(stale)
        return aborted
