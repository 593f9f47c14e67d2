"""The catalog: where upload records live. Backends: memory (tests), SQLite, PostgreSQL.

The one write primitive besides insert and delete is :meth:`Catalog.compare_and_set`: change
some fields of a record only if other fields still hold the expected values, atomically. The
upload service builds every state change on it (offset advances, finishing, aborting), so two
requests, or two server instances, can never both advance one offset or finish one upload.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from chunkd.uploads.models import FIELDS, Part, Upload, UploadState


@dataclass(frozen=True, slots=True)
class Usage:
    """What one owner holds: unfinished uploads (count, declared bytes) and finished bytes."""

    open_uploads: int = 0
    open_bytes: int = 0
    stored_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Handoff:
    """The hand-off of one finished upload to processing (see ``hooks.dispatcher``)."""

    upload_id: str
    state: str  # pending, delivered, failed
    attempts: int = 0
    next_at: float = 0.0
    last_error: str | None = None
    delivered_at: float | None = None


@dataclass(frozen=True, slots=True)
class Totals:
    """Uploads and bytes (declared length, or offset while deferred) per owner and state."""

    owner: str | None
    state: UploadState
    uploads: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Activity:
    """What happened since a moment: uploads created, and uploads whose last change (into
    their current state) came after it, with the bytes and the time from creation to
    completion of the completed ones."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    aborted: int = 0
    expired: int = 0
    completed_bytes: int = 0
    completed_seconds: float = 0.0


class Catalog(ABC):
    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; records stay."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the catalog cannot be reached."""

    @abstractmethod
    async def insert(self, upload: Upload) -> None:
        """Store a new record; the id must be new."""

    @abstractmethod
    async def get(self, upload_id: str) -> Upload | None:
        """The record, or ``None`` if there is none."""

    @abstractmethod
    async def compare_and_set(
        self, upload_id: str, expect: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> Upload | None:
        """Apply ``changes`` if every field in ``expect`` holds its value; return the new record.

        Returns ``None`` (and changes nothing) when the record is missing or any expectation
        fails. The change is committed durably before this returns.
        """

    @abstractmethod
    async def delete(self, upload_id: str) -> bool:
        """Remove the record and its parts; ``True`` if there was one."""

    @abstractmethod
    async def add_part(self, upload_id: str, part: Part) -> bool:
        """Record a received part, durably; ``False`` (and no change) if that index exists."""

    @abstractmethod
    async def get_part(self, upload_id: str, index: int) -> Part | None:
        """The part with ``index``, or ``None``."""

    @abstractmethod
    async def list_parts(self, upload_id: str) -> list[Part]:
        """Every received part, by index."""

    @abstractmethod
    async def list_expired(self, now: float, limit: int) -> list[Upload]:
        """Records whose ``expires_at`` is before ``now`` (any state), oldest first."""

    @abstractmethod
    async def usage(self, owner: str | None) -> Usage:
        """Totals over the owner's uploads: open ones (receiving or verifying, counting their
        declared length, or their offset while it is deferred) and complete ones."""

    @abstractmethod
    async def claim_nonce(self, nonce: str, expires_at: float) -> bool:
        """Remember a single-use nonce; ``False`` if it was claimed before."""

    @abstractmethod
    async def purge_nonces(self, now: float) -> int:
        """Forget nonces past their expiry; returns how many."""

    @abstractmethod
    async def list_uploads(
        self,
        *,
        owner: str | None = None,
        states: frozenset[UploadState] | None = None,
        updated_before: float | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[Upload]:
        """Uploads matching every given filter, ordered by id, those after ``after`` (paging)."""

    @abstractmethod
    async def totals(self) -> list[Totals]:
        """Upload counts and bytes grouped by owner and state."""

    @abstractmethod
    async def activity(self, since: float) -> Activity:
        """Counts over uploads updated at or after ``since``, in one aggregate query."""

    @abstractmethod
    async def get_handoff(self, upload_id: str) -> Handoff | None:
        """The upload's hand-off record (created with its completion), or ``None``."""

    @abstractmethod
    async def claim_handoffs(self, now: float, lease: float, limit: int) -> list[Handoff]:
        """Pending hand-offs due by ``now`` and not claimed by anyone, now claimed for ``lease``
        seconds (one claimant across instances), with ``attempts`` counted up."""

    @abstractmethod
    async def settle_handoff(
        self,
        upload_id: str,
        *,
        delivered: bool,
        now: float,
        next_at: float | None = None,
        error: str | None = None,
    ) -> None:
        """Record a delivery: delivered, or failed and due again at ``next_at`` (``None``:
        failed for good)."""

    @abstractmethod
    async def list_by_state(self, states: frozenset[UploadState], limit: int) -> list[Upload]:
        """Records in any of ``states``, oldest first (used by start-up recovery)."""


def settlement(delivered: bool, now: float, next_at: float | None) -> tuple[str, float]:
    """A settled hand-off's state and when it is next due: delivered, due again, or failed."""
    if delivered:
        return "delivered", now
    return ("pending", next_at) if next_at is not None else ("failed", now)


def check_fields(names: Mapping[str, Any]) -> None:
    unknown = set(names) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown upload fields: {sorted(unknown)}")
    if "id" in names:
        raise ValueError("an upload's id never changes")
