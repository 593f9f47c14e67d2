"""Who is asking: the owner every upload is bound to, and what they may do."""

from __future__ import annotations

from dataclasses import dataclass

UPLOAD = "upload"
ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Identity:
    """``owner`` is ``None`` only in anonymous mode (no authentication configured).

    A signed URL grants one ``upload_id`` (or, with ``max_bytes``, the creation of one upload
    of at most that size) and nothing else.
    """

    owner: str | None
    scopes: frozenset[str]
    via: str  # "token", "signature" or "anonymous"
    upload_id: str | None = None
    max_bytes: int | None = None
    nonce: str | None = None
    expires_at: float | None = None

    def can(self, scope: str) -> bool:
        return scope in self.scopes


ANONYMOUS = Identity(owner=None, scopes=frozenset({UPLOAD, ADMIN}), via="anonymous")
