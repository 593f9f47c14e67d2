"""Lifecycle hooks: what they are called, what they receive, how one refuses.

``pre-create`` and ``pre-finish`` are asked and may refuse (or, pre-create, change the
metadata); ``post-create``, ``post-receive`` (throttled), ``post-terminate`` are told; and
``post-finish`` is the hand-off to processing, delivered durably and exactly once per upload
from the catalog's outbox (see ``dispatcher``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from chunkd.exceptions import Forbidden

PRE_CREATE = "pre-create"
POST_CREATE = "post-create"
POST_RECEIVE = "post-receive"
PRE_FINISH = "pre-finish"
POST_FINISH = "post-finish"
POST_TERMINATE = "post-terminate"
ALL = (PRE_CREATE, POST_CREATE, POST_RECEIVE, PRE_FINISH, POST_FINISH, POST_TERMINATE)
ASKING = frozenset({PRE_CREATE, PRE_FINISH})


class HookRefused(Forbidden):
    code = "HOOK_REFUSED"
    default_hint = "The server's policy refused this upload; the message says why."


class HookFailed(Exception):
    """A hook could not be reached or answered an error: retry later."""


class Hook(ABC):
    """One hook target. ``call`` returns the hook's answer (a dict, maybe empty); it raises
    ``HookRefused`` to refuse an asking hook, ``HookFailed`` when it could not be delivered."""

    @abstractmethod
    async def call(self, name: str, payload: dict[str, Any], delivery: str) -> dict[str, Any]: ...

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""
