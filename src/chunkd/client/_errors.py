"""What can go wrong in an upload, as exceptions.

```
ChunkdError                 anything the client raises on purpose
├── ServerRefused           a non-retryable answer: the server's code, message and hint
├── RetriesExhausted        the network or the server kept failing past the retry budget
├── FileChanged             the file is not what was uploaded before (start over, or it
│                           changed while it was being sent)
└── Cancelled               the caller cancelled; the upload is resumable
```
"""

from __future__ import annotations

from typing import Any


class ChunkdError(Exception):
    """Base of every error the client raises on purpose."""


class ServerRefused(ChunkdError):
    """The server answered with an error that retrying will not fix."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        hint: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint
        self.details = details or {}
        text = f"{code} (HTTP {status}): {message}"
        super().__init__(f"{text} — {hint}" if hint else text)


class RetriesExhausted(ChunkdError):
    """Every attempt failed with a network error or a retryable answer."""

    def __init__(self, attempts: int, reason: str, *, unreachable: bool = False) -> None:
        self.attempts = attempts
        self.reason = reason
        self.unreachable = unreachable  # the last failure was the network, not an answer
        super().__init__(f"gave up after {attempts} attempts: {reason}")


class FileChanged(ChunkdError):
    """The local file changed while it was being uploaded."""


class Cancelled(ChunkdError):
    """The upload was cancelled; what the server acknowledged is kept for a resume."""
