"""Expiry: unfinished uploads that saw no activity for ``expiry`` seconds are swept.

Sweeping an upload removes its bytes and leaves a small tombstone record (state ``expired``,
or ``aborted`` for a terminated one) so clients get 410 rather than 404 for a while; tombstones
older than another ``expiry`` are deleted. Finished uploads never expire (their ``expires_at``
is cleared at completion), except partial uploads made only to be concatenated.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from chunkd.exceptions import UploadLocked
from chunkd.uploads.events import EXPIRED, Event
from chunkd.uploads.models import UploadState
from chunkd.uploads.service import UploadService

log = logging.getLogger("chunkd.expiry")

_TOMBSTONES = frozenset({UploadState.EXPIRED, UploadState.ABORTED})


@dataclass(slots=True)
class SweepReport:
    expired: int = 0
    purged: int = 0
    bytes_reclaimed: int = 0


async def sweep(service: UploadService, *, batch: int = 500) -> SweepReport:
    """One pass over everything past its expiry time."""
    report = SweepReport()
    now = service.clock()
    for upload in await service.catalog.list_expired(now, batch):
        if upload.state in _TOMBSTONES:
            if await service.catalog.delete(upload.id):
                report.purged += 1
            continue
        if upload.state is UploadState.VERIFYING:
            continue  # being finished; recovery owns it
        try:
            async with service.locker.hold(upload.id, wait=0.5):
                expired = await service.catalog.compare_and_set(
                    upload.id,
                    {"state": upload.state, "expires_at": upload.expires_at},
                    {
                        "state": UploadState.EXPIRED,
                        "updated_at": now,
                        "expires_at": now + service.config.expiry,
                    },
                )
                if expired is None:  # renewed or changed since listed
                    continue
                service.digests.forget(upload.id)
                report.bytes_reclaimed += await service.storage.delete(upload.storage)
                report.expired += 1
                service.events.publish(Event(EXPIRED, upload.id, upload.owner))
        except UploadLocked:
            continue  # a request is writing to it right now, so it is not idle
    return report


async def sweep_all(service: UploadService) -> SweepReport:
    """Sweep until nothing is left past its time (``chunkd cleanup``)."""
    total = SweepReport()
    while True:
        report = await sweep(service)
        total.expired += report.expired
        total.purged += report.purged
        total.bytes_reclaimed += report.bytes_reclaimed
        if report.expired == 0 and report.purged == 0:
            return total


async def abort_orphans(service: UploadService) -> int:
    """Stores that can leave pieces no record points to (S3 multipart uploads whose record
    was lost) clean those up once they are well past any upload's expiry."""
    cleaner = getattr(service.storage, "abort_orphans", None)
    if cleaner is None:
        return 0
    aborted: int = await cleaner(older_than=2 * service.config.expiry)
    if aborted:
        log.info("aborted orphaned multipart uploads", extra={"aborted": aborted})
    return aborted


async def run_sweeper(service: UploadService, interval: float) -> None:
    """The built-in periodic sweeper, run as a background task for the server's lifetime."""
    while True:
        await asyncio.sleep(interval)
        try:
            report = await sweep(service)
            service.swept_bytes += report.bytes_reclaimed
            await abort_orphans(service)
            await service.catalog.purge_nonces(service.clock())
            # uploads left verifying (a scanner that was down) are tried again
            await service.recover(frozenset({UploadState.VERIFYING}))
        except Exception:
            log.exception("expiry sweep failed; retrying at the next interval")
            continue
        if report.expired or report.purged:
            log.info(
                "expiry sweep",
                extra={
                    "expired": report.expired,
                    "purged": report.purged,
                    "bytes_reclaimed": report.bytes_reclaimed,
                },
            )
