"""Which worker advances a REST upload's frontier, when parts reach several (``--workers``).

The frontier feeds the parts, in order, into the upload's running whole-file digests, and that
state lives in one process's memory (:mod:`chunkd.uploads.hashing`). A worker that stores a part
but holds no running state for the upload must not move the frontier itself: the offset would
pass bytes nobody hashed, and completing would have to read the whole file back. It *nudges*
the others instead; the worker holding the state advances. Completing on a worker without the
state asks first whether one holds it: if so it waits while that worker hashes to the end and
records the digests with the final offset; if not (that worker died), it goes on alone and the
digests are computed from the stored bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from chunkd.uploads.hashing import DigestCache
from chunkd.uploads.peers import Peers

_ANSWER_WITHIN = 0.25  # seconds a completing worker waits for the state's holder to speak up


class FrontierRelay:
    def __init__(self, peers: Peers, digests: DigestCache, advance: Callable[[str], None]) -> None:
        self._peers = peers
        self._digests = digests
        self._advance = advance  # starts a local advance of the upload's frontier
        self._asking: dict[str, asyncio.Future[None]] = {}
        peers.on("advance", self._on_advance)
        peers.on("advancing", self._on_advancing)

    def holds(self, upload_id: str) -> bool:
        """Whether this worker holds the upload's running digests (at any offset)."""
        return self._digests.holds(upload_id)

    def nudge(self, upload_id: str) -> None:
        """A part was stored here: whoever holds the state, advance."""
        self._peers.broadcast({"kind": "advance", "upload": upload_id})

    async def ask(self, upload_id: str) -> bool:
        """Nudge, and whether a worker holding the state answered that it is advancing."""
        answered = self._asking.setdefault(upload_id, asyncio.get_running_loop().create_future())
        try:
            self._peers.broadcast({"kind": "advance", "upload": upload_id, "answer": True})
            await asyncio.wait_for(asyncio.shield(answered), _ANSWER_WITHIN)
            return True
        except TimeoutError:
            return False
        finally:
            if self._asking.get(upload_id) is answered:
                del self._asking[upload_id]

    def _on_advance(self, message: dict[str, Any]) -> None:
        upload_id = str(message["upload"])
        if not self._digests.holds(upload_id):
            return
        self._advance(upload_id)
        if message.get("answer"):
            self._peers.send(int(message["from"]), {"kind": "advancing", "upload": upload_id})

    def _on_advancing(self, message: dict[str, Any]) -> None:
        waiting = self._asking.get(str(message["upload"]))
        if waiting is not None and not waiting.done():
            waiting.set_result(None)
