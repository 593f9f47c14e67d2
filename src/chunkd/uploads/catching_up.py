"""Running digests behind the bytes other workers stored (``chunkd serve --workers N``).

A tus client that opens a new connection for each PATCH (tuspy does) sends them to whichever
worker accepts it, and only one worker holds the upload's running digests. The others store
their bytes unhashed and nudge it; it *catches up*, feeding those bytes back from storage, so
its state stays close behind the offset. When the upload's last bytes arrive at a worker
without the state, that worker has the holder catch up to the end and record the digests in the
catalog, then finishes with them, instead of reading the whole file back itself.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from chunkd.storage.base import SupportsDownload
from chunkd.uploads.frontier_relay import FrontierRelay
from chunkd.uploads.hashing import hex_digests
from chunkd.uploads.models import Upload, UploadState

if TYPE_CHECKING:
    from chunkd.uploads.service import UploadService

#: Waiting for another worker's digests ends when the upload has not moved for this long.
STALLED = 5.0


async def catch_up(service: UploadService, upload: Upload) -> Upload:
    """Feed this worker's running digests of ``upload`` the stored bytes they lack; at the
    end, record them in the catalog for whichever worker finishes it."""
    running = service.digests.peek(upload.id)
    storage = service.storage
    if (
        running is None
        or running.offset >= upload.offset
        or not isinstance(storage, SupportsDownload)
        or not storage.readable_before_finish
    ):
        return upload
    hashers = running.fork()
    updates = [hasher.update for hasher in hashers.values()]
    await storage.feed(upload.storage, running.offset, upload.offset, updates)
    if service.digests.peek(upload.id) is not running:
        return upload  # a request on this worker moved them meanwhile
    if upload.length is not None and upload.offset == upload.length:
        digests = hex_digests(hashers)
        recorded = await service.catalog.compare_and_set(
            upload.id,
            {"offset": upload.offset, "state": UploadState.RECEIVING},
            {"digests": digests},
        )
        service.digests.forget(upload.id)
        return recorded or upload
    service.digests.commit(upload.id, upload.offset, hashers)
    return upload


async def wait_recorded(service: UploadService, relay: FrontierRelay, upload_id: str) -> None:
    """Wait while the worker holding the digests brings them to the end; stop once they are
    recorded, when no worker answers for them any more, or when the upload stops moving."""
    loop = asyncio.get_running_loop()
    offset, moved, asked = -1, loop.time(), loop.time()
    while (upload := await service.catalog.get(upload_id)) is not None:
        if upload.state is not UploadState.RECEIVING:
            return
        if service.digests.recorded(upload) is not None:
            return
        now = loop.time()
        if upload.offset != offset:
            offset, moved = upload.offset, now
        elif now - moved > STALLED:
            return  # that worker died or lost the state: hash here, from storage
        if now - asked >= 1.0:
            asked = now
            if not await relay.ask(upload_id):
                return
        await asyncio.sleep(0.02)
