"""The vocabulary between the sans-I/O upload flows and the drivers that run them.

A flow is a generator: it yields an effect, and the driver sends back the effect's result.

- ``Request`` -> ``Response`` (or ``TransportFailure`` when the network failed)
- ``Sleep`` -> ``None`` (the driver may raise ``Cancelled`` instead)
- ``Checkpoint`` -> ``None`` (the driver saves the session so a new process can resume it)
- ``Progressed`` -> ``None`` (acknowledged bytes and parts, for progress reports)
- ``Parallel`` -> ``list`` of the sub-flows' results, at most ``limit`` running at once
- ``FileDigest`` -> the whole file's sha256, hex (from the driver's one pass over the file)
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, TypeVar

# a span's crc32c is computed by the driver's pass over the file, and sent in a header of this
# protocol's kind: X-Checksum-Crc32c (REST) or Upload-Checksum (tus)
DigestHeader = Literal["content-digest", "upload-checksum"]


@dataclass(frozen=True)
class FileSpan:
    """Bytes of the file being uploaded, read by the driver just before they are sent."""

    offset: int
    length: int
    digest: DigestHeader | None = None


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    body: FileSpan | None = None


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names
    content: bytes = b""

    def json(self) -> Any:
        return json.loads(self.content) if self.content else None

    def error(self) -> dict[str, Any]:
        """The ``{"error": {...}}`` body of a REST error, or ``{}``."""
        try:
            body = self.json()
        except ValueError:
            return {}
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error: dict[str, Any] = body["error"]
            return error
        return {}


@dataclass(frozen=True)
class TransportFailure:
    reason: str


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Checkpoint:
    session: Session


@dataclass(frozen=True)
class Progressed:
    bytes: int
    parts: int = 0
    absolute: bool = False  # True: ``bytes`` is the new total, not an increment


@dataclass(frozen=True)
class FileDigest:
    """Ask for the whole file's sha256."""


@dataclass(frozen=True)
class Parallel:
    flows: Iterable[Flow[Any]]
    limit: int


@dataclass(frozen=True)
class Session:
    """An upload on the server, as much as a later process needs to resume it."""

    protocol: Literal["rest", "tus"]
    id: str
    url: str  # REST: the session's status URL; tus: the upload URL
    parts_url: str = ""  # REST: template with {n}
    complete_url: str = ""
    part_size: int = 0


Effect = Request | Sleep | Checkpoint | Progressed | Parallel | FileDigest
T = TypeVar("T")
Flow: TypeAlias = Generator[Effect, Any, T]
