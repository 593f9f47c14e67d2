"""The frontier of a session upload: its parts, in order, into the running whole-file digests.

Parts arrive in any order and in parallel; behind them the frontier advances over the
contiguous prefix of stored parts, reading each step back into the running digests and
committing the record's ``offset`` with it. One advance at a time per upload: another that
arrives meanwhile waits, and a part stored while one runs and one waits needs no third.

With several workers (``chunkd serve --workers N``) parts reach any of them, and only the
worker holding an upload's running digests may advance (``FrontierRelay``): the others nudge
it, and the one that completes has it record the digests at the end (``settle``). For tus
uploads the same machinery lets the holder catch up with PATCHes other workers stored
(:mod:`chunkd.uploads.catching_up`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from chunkd.storage.base import SupportsDownload
from chunkd.uploads.catching_up import catch_up, wait_recorded
from chunkd.uploads.frontier_relay import FrontierRelay
from chunkd.uploads.hashing import hex_digests
from chunkd.uploads.models import Upload, UploadState

if TYPE_CHECKING:
    from chunkd.uploads.service import UploadService

#: The frontier commits its offset (and digest state) at least this often, in bytes: when it
#: lags behind parts arriving in order, its progress still shows and survives.
_FRONTIER_STEP = 64 * 1024 * 1024


class _Frontier:
    """One upload's frontier: its lock, and the advances holding or awaiting it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class Frontiers:
    """Every session upload's frontier in this process."""

    def __init__(self, service: UploadService) -> None:
        self._service = service
        self._locks: dict[str, _Frontier] = {}
        self._tasks: set[asyncio.Task[Upload | None]] = set()
        #: with other workers: how this one reaches the one holding an upload's digests
        self.relay = (
            FrontierRelay(service.peers, service.digests, self.spawn)
            if service.peers is not None
            else None
        )

    def stored(self, upload: Upload) -> None:
        """A part of ``upload`` was stored here: advance (and tell the holder, if elsewhere)."""
        self.spawn(upload.id)
        relay, hashed = self.relay, self._service.digests.for_upload(upload.expected_digests)
        if relay is not None and hashed and not relay.holds(upload.id):
            relay.nudge(upload.id)  # the running digests may be in another worker

    def spawn(self, upload_id: str) -> None:
        """Advance in the background (unless one advance runs and one already waits)."""
        frontier = self._locks.get(upload_id)
        if frontier is not None and frontier.users >= 2:
            return  # one advance runs and one waits: the waiter will see this part too
        task = asyncio.get_running_loop().create_task(self.advance(upload_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def advance(self, upload_id: str, *, alone: bool = False) -> Upload | None:
        """Move ``offset`` (and the running digests) over newly contiguous parts.

        With other workers, one without the running digests leaves the frontier to the one
        holding them, unless ``alone`` (completing, when no worker answered for them).
        """
        frontier = self._locks.get(upload_id)
        if frontier is None:
            frontier = self._locks[upload_id] = _Frontier()
        # The entry lives while anyone holds or awaits its lock: dropped any earlier (when the
        # holder lets go, before the waiter wakes), a newcomer would make a second lock and
        # two advances would hash the same parts at once, one of them for nothing.
        frontier.users += 1
        try:
            async with frontier.lock:
                while True:  # a step at a time, each committed: progress shows as it is made
                    upload, more = await self._step(upload_id, alone)
                    if not more:
                        return upload
        finally:
            frontier.users -= 1
            if frontier.users == 0:
                del self._locks[upload_id]

    async def _step(self, upload_id: str, alone: bool) -> tuple[Upload | None, bool]:
        """One step of the frontier (at most ``_FRONTIER_STEP`` bytes), committed; and
        whether more contiguous parts may be waiting."""
        service = self._service
        upload = await service.catalog.get(upload_id)
        if upload is None or upload.state is not UploadState.RECEIVING:
            return upload, False
        if upload.part_size is None:  # tus, with workers: the digests catch up with the offset
            return await catch_up(service, upload), False
        assert upload.length is not None
        algorithms = service.digests.for_upload(upload.expected_digests)
        hashers = service.digests.start(upload_id, upload.offset, algorithms)
        storage = service.storage
        if not storage.readable_before_finish:
            hashers = None  # parts cannot be read back yet: hashed once the file is sealed
        elif hashers is None and algorithms and self.relay is not None and not alone:
            return upload, False  # another worker holds the running digests (or nobody)
        offset = upload.offset
        more = False
        while offset < upload.length:
            if offset - upload.offset >= _FRONTIER_STEP:
                more = True
                break
            part = await service.catalog.get_part(upload_id, offset // upload.part_size)
            if part is None:
                break
            offset += part.size
        if offset == upload.offset:
            return upload, False
        if hashers is not None and isinstance(storage, SupportsDownload):
            # the whole step in one worker-thread pass: a pass per part waited for the event
            # loop between parts (2-8 ms each under load), and the frontier fell behind
            updates = [hasher.update for hasher in hashers.values()]
            await storage.feed(upload.storage, upload.offset, offset, updates)
        changes: dict[str, object] = {"offset": offset}
        if self.relay is not None and hashers is not None and offset == upload.length:
            # the worker that completes may not be this one: it finds the digests here
            changes["digests"] = hex_digests(hashers)
        advanced = await service.catalog.compare_and_set(
            upload_id, {"offset": upload.offset, "state": UploadState.RECEIVING}, changes
        )
        if advanced is not None and "digests" in changes:
            service.digests.forget(upload_id)  # recorded: whichever worker completes uses them
        elif advanced is not None:
            service.digests.commit(upload_id, offset, hashers)
        return advanced, more and advanced is not None

    def behind(self, upload_id: str) -> None:
        """Bytes were stored here unhashed: the worker holding the digests catches up."""
        if self.relay is not None and self.relay.holds(upload_id):
            self.spawn(upload_id)
        elif self.relay is not None:
            self.relay.nudge(upload_id)

    async def settle(self, upload: Upload) -> None:
        """Before finishing ``upload`` on this worker: have its running digests brought to the
        end and recorded, here if this worker holds them, else by the worker that does (if
        any answers); the finisher then takes them from the record."""
        relay = self.relay
        if relay is None or self._service.digests.recorded(upload) is not None:
            return
        if relay.holds(upload.id):
            await self.advance(upload.id)
        elif await relay.ask(upload.id):
            await wait_recorded(self._service, relay, upload.id)
