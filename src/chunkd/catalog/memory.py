"""An in-process catalog: the reference implementation of the contract, for tests."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

from chunkd.catalog.base import Activity, Catalog, Handoff, Totals, Usage, check_fields, settlement
from chunkd.uploads.models import OPEN_STATES, Part, Upload, UploadState


class MemoryCatalog(Catalog):
    def __init__(self) -> None:
        self._records: dict[str, Upload] = {}
        self._parts: dict[str, dict[int, Part]] = {}
        self._nonces: dict[str, float] = {}
        self._handoffs: dict[str, tuple[Handoff, float]] = {}  # with its claimed-until time
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    async def insert(self, upload: Upload) -> None:
        async with self._lock:
            if upload.id in self._records:
                raise KeyError(f"upload {upload.id} exists")
            self._records[upload.id] = upload

    async def get(self, upload_id: str) -> Upload | None:
        return self._records.get(upload_id)

    async def compare_and_set(
        self, upload_id: str, expect: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> Upload | None:
        check_fields(expect)
        check_fields(changes)
        async with self._lock:
            current = self._records.get(upload_id)
            if current is None:
                return None
            if any(getattr(current, name) != value for name, value in expect.items()):
                return None
            updated = current.replace(**changes)
            self._records[upload_id] = updated
            completed = updated.state is UploadState.COMPLETE is not current.state
            if completed and not updated.partial and upload_id not in self._handoffs:
                # what the SQL catalogs' trigger does, in the same step as the completion
                self._handoffs[upload_id] = (
                    Handoff(upload_id, "pending", 0, updated.updated_at),
                    0.0,
                )
            return updated

    async def delete(self, upload_id: str) -> bool:
        async with self._lock:
            self._parts.pop(upload_id, None)
            self._handoffs.pop(upload_id, None)
            return self._records.pop(upload_id, None) is not None

    async def add_part(self, upload_id: str, part: Part) -> bool:
        async with self._lock:
            if upload_id not in self._records:
                raise KeyError(f"upload {upload_id} does not exist")
            parts = self._parts.setdefault(upload_id, {})
            if part.index in parts:
                return False
            parts[part.index] = part
            return True

    async def get_part(self, upload_id: str, index: int) -> Part | None:
        return self._parts.get(upload_id, {}).get(index)

    async def list_parts(self, upload_id: str) -> list[Part]:
        return sorted(self._parts.get(upload_id, {}).values(), key=lambda part: part.index)

    async def list_expired(self, now: float, limit: int) -> list[Upload]:
        expired = [
            u for u in self._records.values() if u.expires_at is not None and u.expires_at < now
        ]
        return sorted(expired, key=lambda u: u.expires_at or 0.0)[:limit]

    async def usage(self, owner: str | None) -> Usage:
        mine = [u for u in self._records.values() if u.owner == owner]
        open_ = [u for u in mine if u.state in OPEN_STATES]
        return Usage(
            open_uploads=len(open_),
            open_bytes=sum(u.length if u.length is not None else u.offset for u in open_),
            stored_bytes=sum(u.length or 0 for u in mine if u.state is UploadState.COMPLETE),
        )

    async def claim_nonce(self, nonce: str, expires_at: float) -> bool:
        async with self._lock:
            if nonce in self._nonces:
                return False
            self._nonces[nonce] = expires_at
            return True

    async def purge_nonces(self, now: float) -> int:
        async with self._lock:
            old = [nonce for nonce, expires in self._nonces.items() if expires < now]
            for nonce in old:
                del self._nonces[nonce]
            return len(old)

    async def list_uploads(
        self,
        *,
        owner: str | None = None,
        states: frozenset[UploadState] | None = None,
        updated_before: float | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[Upload]:
        found = [
            u
            for u in self._records.values()
            if (owner is None or u.owner == owner)
            and (not states or u.state in states)
            and (updated_before is None or u.updated_at < updated_before)
            and (after is None or u.id > after)
        ]
        return sorted(found, key=lambda u: u.id)[:limit]

    async def totals(self) -> list[Totals]:
        groups: dict[tuple[str | None, UploadState], tuple[int, int]] = {}
        for u in self._records.values():
            count, size = groups.get((u.owner, u.state), (0, 0))
            groups[(u.owner, u.state)] = (
                count + 1,
                size + (u.length if u.length is not None else u.offset),
            )
        ordered = sorted(groups.items(), key=lambda item: (item[0][0] or "", str(item[0][1])))
        return [Totals(owner, state, count, size) for (owner, state), (count, size) in ordered]

    async def activity(self, since: float) -> Activity:
        recent = [u for u in self._records.values() if u.updated_at >= since]
        done = [u for u in recent if u.state is UploadState.COMPLETE]

        def ended(state: UploadState) -> int:
            return sum(1 for u in recent if u.state is state)

        return Activity(
            started=sum(1 for u in recent if u.created_at >= since),
            completed=len(done),
            failed=ended(UploadState.FAILED),
            aborted=ended(UploadState.ABORTED),
            expired=ended(UploadState.EXPIRED),
            completed_bytes=sum(u.length if u.length is not None else u.offset for u in done),
            completed_seconds=sum(u.updated_at - u.created_at for u in done),
        )

    async def get_handoff(self, upload_id: str) -> Handoff | None:
        entry = self._handoffs.get(upload_id)
        return None if entry is None else entry[0]

    async def claim_handoffs(self, now: float, lease: float, limit: int) -> list[Handoff]:
        async with self._lock:
            due = sorted(
                (h for h, claimed in self._handoffs.values()
                 if h.state == "pending" and h.next_at <= now and claimed <= now),
                key=lambda h: h.next_at,
            )[:limit]  # fmt: skip
            claimed = []
            for handoff in due:
                taken = dataclasses.replace(handoff, attempts=handoff.attempts + 1)
                self._handoffs[handoff.upload_id] = (taken, now + lease)
                claimed.append(taken)
            return claimed

    async def settle_handoff(
        self,
        upload_id: str,
        *,
        delivered: bool,
        now: float,
        next_at: float | None = None,
        error: str | None = None,
    ) -> None:
        async with self._lock:
            entry = self._handoffs.get(upload_id)
            if entry is None:
                return
            state, due = settlement(delivered, now, next_at)
            self._handoffs[upload_id] = (
                dataclasses.replace(
                    entry[0],
                    state=state,
                    next_at=due,
                    last_error=error,
                    delivered_at=now if delivered else None,
                ),
                0.0,
            )

    async def list_by_state(self, states: frozenset[UploadState], limit: int) -> list[Upload]:
        found = [u for u in self._records.values() if u.state in states]
        return sorted(found, key=lambda u: u.created_at)[:limit]
