"""One file's upload, minus the I/O loop: what both drivers do before, around and after a flow.

``prepare`` (blocking file I/O) fingerprints the file, looks up a session an earlier process
left, and builds the flow; ``open`` gives it the file to read. ``checkpoint`` saves a new
session as soon as the server created it, so a process killed a moment later resumes it, and
``sha256`` remembers the whole-file digest once the reader's pass has computed it.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from chunkd.client._effects import Flow, Session
from chunkd.client._files import FileReader, Fingerprint
from chunkd.client._flow import UploadPlan, UploadResult, rest_flow, tus_flow
from chunkd.client._progress import ProgressCallback, ProgressTracker
from chunkd.client._retry import RetryPolicy
from chunkd.client._state import ResumeState
from chunkd.protocol.parts import MiB, choose_part_size, default_part_size, part_count

Protocol = Literal["rest", "tus"]

_TARGET_PARTS = 64  # a large file goes in about this many parts...
_LARGEST_PART = 64 * MiB  # ...of at most this size (unless the server's own rule needs more)


def sending_part_size(size: int) -> int:
    """The part size the client asks for when it is not told one.

    The server's default (10 MiB above 100 MB) until a file would take more than 64 parts,
    then about 64 parts of up to 64 MiB: 16 MiB for 1 GiB, 64 MiB from 4 GiB. Each part costs
    a request, a sync and catalog commits on the server (3-6 ms of its CPU beyond the bytes,
    measured on 1 GiB here: 16 MiB parts were 1.08x as fast as 10 MiB ones on two shared cores);
    a connection cut mid-part loses that part, so parts stay small for recordings under 640 MiB.
    """
    grown = -(-size // _TARGET_PARTS // MiB) * MiB
    return max(default_part_size(size), min(grown, _LARGEST_PART))


@dataclass
class Options:
    """Settings shared by ``Client`` and ``AsyncClient``."""

    server: str
    token: str | None = None
    parallel: int = 4
    part_size: int | None = None
    protocol: Protocol = "rest"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    state: ResumeState | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def connections(self) -> int:
        """Connections kept: one per part in flight and two to spare."""
        return self.parallel + 2

    def http_settings(self, timeout: float) -> dict[str, Any]:
        """What both drivers give their httpx client: the token, timeouts, ``connections``."""
        spare = self.connections
        return {
            "headers": self.headers(),
            "timeout": httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            "limits": httpx.Limits(max_connections=spare, max_keepalive_connections=spare),
        }


class UploadJob:
    def __init__(
        self,
        options: Options,
        path: Path,
        metadata: Mapping[str, str] | None,
        content_type: str | None,
        on_progress: ProgressCallback | None,
        cancelled: Callable[[], bool],
    ) -> None:
        self.options = options
        self.path = path
        self.metadata = dict(metadata or {})
        self.content_type = content_type or mimetypes.guess_type(path.name)[0]
        self.on_progress = on_progress
        self.cancelled = cancelled
        self.tracker = ProgressTracker(0, 0, on_progress)
        self.fingerprint: Fingerprint | None = None
        self.session: Session | None = None
        self.reader: FileReader | None = None
        self.part_size = 1
        self._sha256 = ""  # remembered from an earlier run, or computed by the reader

    def prepare(self) -> Flow[UploadResult]:
        options = self.options
        self.fingerprint = file = Fingerprint.of(self.path)
        sha256, prior = "", None
        if options.state is not None:
            sha256, prior = options.state.lookup(options.server, options.protocol, file)
        self._sha256, self.session = sha256, prior
        part_size = prior.part_size if prior and prior.part_size else None
        part_size = part_size or choose_part_size(
            file.size, options.part_size or sending_part_size(file.size)
        )
        self.part_size = part_size
        self.tracker = ProgressTracker(
            file.size, part_count(file.size, part_size), self.on_progress
        )
        plan = UploadPlan(
            server=options.server,
            filename=self.path.name,
            size=file.size,
            part_size=part_size,
            parallel=max(1, options.parallel),
            content_type=self.content_type,
            metadata=self.metadata,
            retry=options.retry,
        )
        run = tus_flow if options.protocol == "tus" else rest_flow
        return run(plan, prior)

    def open(self, fd: int) -> FileReader:
        """The reader the driver sends spans with (``fd`` stays the driver's to close)."""
        assert self.fingerprint is not None, "prepare first"
        self.reader = FileReader(
            fd,
            self.fingerprint.size,
            self.part_size,
            ahead=max(1, self.options.parallel) + 1,
            cancelled=self.cancelled,
        )
        return self.reader

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()

    def checkpoint(self, session: Session) -> None:
        self.session = session
        state, file = self.options.state, self.fingerprint
        if state is not None and file is not None:
            state.remember(self.options.server, self.options.protocol, file, self._sha256, session)

    def sha256(self) -> str:
        """The whole file's sha256: remembered, or from the reader's pass (blocking I/O)."""
        if not self._sha256:
            assert self.reader is not None, "open first"
            self._sha256 = self.reader.sha256()
            if self.session is not None:
                self.checkpoint(self.session)
        return self._sha256

    def finished(self, result: UploadResult) -> UploadResult:
        state, file = self.options.state, self.fingerprint
        if state is not None and file is not None:
            state.forget(self.options.server, self.options.protocol, file.path)
        self.tracker.set_phase("done", sent=self.tracker.total)
        return result


def response_headers(headers: Any) -> dict[str, str]:
    return {str(key).lower(): str(value) for key, value in headers.items()}
