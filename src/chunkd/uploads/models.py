"""The ``Upload`` record, shared by every protocol and kept by the catalog."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any


class UploadState(enum.StrEnum):
    RECEIVING = "receiving"
    VERIFYING = "verifying"
    COMPLETE = "complete"
    FAILED = "failed"
    ABORTED = "aborted"
    EXPIRED = "expired"


# States an upload can still take bytes or be finished from.
OPEN_STATES = frozenset({UploadState.RECEIVING, UploadState.VERIFYING})


@dataclass(frozen=True, slots=True)
class Upload:
    """One upload, whichever protocol created it.

    ``offset`` counts the contiguous bytes acknowledged from the start of the file; ``length``
    is ``None`` while a tus client defers it. A session upload (REST) has a ``part_size``; its
    received parts are kept by the catalog as :class:`Part` records. ``storage`` is the
    backend's opaque handle: only the storage backend reads it. ``concat_parts`` lists the
    partial uploads a final tus upload joined; ``partial`` marks an upload made to be joined.
    """

    id: str
    length: int | None
    offset: int = 0
    owner: str | None = None
    state: UploadState = UploadState.RECEIVING
    metadata: dict[str, str | None] = field(default_factory=dict)
    part_size: int | None = None
    partial: bool = False
    concat_parts: tuple[str, ...] | None = None
    storage: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    expected_digests: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # "<CODE>: <message>" of the catalogue error that failed it
    sniffed_type: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    expires_at: float | None = None

    @property
    def is_final(self) -> bool:
        return self.concat_parts is not None

    @property
    def is_session(self) -> bool:
        return self.part_size is not None

    @property
    def is_finished(self) -> bool:
        return self.length is not None and self.offset == self.length

    def replace(self, **changes: Any) -> Upload:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Part:
    """One received part of a session upload: its index, size and identity digest.

    ``digest`` names its algorithm, ``blake3:<hex>`` (parts stored by older versions:
    ``sha256:<hex>``); a part sent again is compared with it.
    """

    index: int
    size: int
    digest: str


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Upload))
