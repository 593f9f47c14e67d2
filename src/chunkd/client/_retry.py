"""Retries with exponential backoff and full jitter, as a sans-I/O step of the flows.

A network failure, a 408/425/429/5xx answer, or an error body saying ``"retryable": true`` is
tried again after a delay; ``Retry-After`` (seconds or an HTTP date) overrides the backoff.
Anything else is returned to the flow to interpret.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from chunkd.client._effects import Flow, Request, Response, Sleep, TransportFailure
from chunkd.client._errors import RetriesExhausted, ServerRefused

_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 10  # tries in all, per request
    base: float = 0.5  # first delay, seconds
    cap: float = 30.0  # longest delay, seconds
    max_retry_after: float = 300.0  # longest Retry-After we agree to wait

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(attempt - 1))]."""
        return random.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))


def retry_after(response: Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def is_retryable(response: Response) -> bool:
    if response.status in _RETRYABLE_STATUS:
        return True
    return response.status >= 400 and response.error().get("retryable") is True


def refused(response: Response) -> ServerRefused:
    """The error to raise for an answer the flow cannot go on from."""
    error = response.error()
    if error:
        return ServerRefused(
            response.status,
            str(error.get("code", "ERROR")),
            str(error.get("message", "")),
            str(error.get("hint", "")),
            error.get("details") if isinstance(error.get("details"), dict) else None,
        )
    text = response.content[:200].decode("utf-8", "replace").strip()
    return ServerRefused(response.status, f"HTTP_{response.status}", text or "unexpected answer")


def send(request: Request, policy: RetryPolicy) -> Flow[Response]:
    """Send ``request`` until it gets an answer that is not worth retrying."""
    attempt = 0
    while True:
        attempt += 1
        reply: Response | TransportFailure = yield request
        if isinstance(reply, TransportFailure):
            reason, wait = f"{request.method} {request.url}: {reply.reason}", None
        elif is_retryable(reply):
            reason = f"{request.method} {request.url}: {refused(reply)}"
            wait = retry_after(reply)
        else:
            return reply
        if attempt >= policy.attempts:
            unreachable = isinstance(reply, TransportFailure)
            raise RetriesExhausted(attempt, reason, unreachable=unreachable)
        delay = policy.backoff(attempt)
        if wait is not None:
            delay = min(wait, policy.max_retry_after) + random.uniform(0, policy.base)
        yield Sleep(delay)
