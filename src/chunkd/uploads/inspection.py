"""Looking inside uploads: the type from the first bytes as they arrive, and at completion the
format check (MRC headers) and the virus scan.

The first bytes are screened as they arrive: once ``HEAD_BYTES`` of the file (or the whole,
shorter, file) are in, the type is sniffed and checked against the allow-list and the declared
type before another byte is written and before anything is acknowledged — so a disallowed file
is refused after 4 KiB, not after 10 GB. An upload whose head arrives in requests smaller than
that is screened as soon as they add up (the earlier pieces are read back from storage).

At completion, an upload that is refused (bad MRC header, virus) is marked failed and its bytes
removed; a scanner that cannot be reached leaves the upload ``verifying``, to be retried —
never passed unscanned.
"""

from __future__ import annotations

from collections.abc import Mapping

from chunkd.exceptions import ChunkdError, Unprocessable
from chunkd.storage.base import Handle, Storage, SupportsDownload
from chunkd.uploads.models import Upload
from chunkd.validation.clamav import ClamdScanner
from chunkd.validation.sniff import HEAD_BYTES, ContentPolicy, sniff

MRC = "application/x-mrc"
_MRC_HEAD = 1024


class InfectedFile(Unprocessable):
    code = "INFECTED_FILE"
    default_hint = "The file was refused by the virus scanner and deleted."


def declared_type(metadata: Mapping[str, str | None]) -> str | None:
    """The type a client claims: REST ``content_type``, or tus metadata ``filetype``/``type``."""
    for key in ("content_type", "filetype", "type"):
        value = metadata.get(key)
        if value:
            return value
    return None


class Screen:
    """Judges one request's share of a file's head as its chunks pass (see the module doc).

    ``feed`` each chunk *before* it is written and ``end`` when the body ends; both raise
    ``UnsupportedMediaType`` when the head is refused. ``sniffed`` is the type, once judged.
    """

    def __init__(self, inspector: Inspector | None, upload: Upload, start: int) -> None:
        self.sniffed: str | None = None
        self._inspector = inspector
        self._upload = upload
        self._start = start
        self.done = (
            inspector is None
            or upload.sniffed_type is not None
            or start >= HEAD_BYTES
            or upload.partial  # pieces of a file: the joined upload is judged at completion
        )
        self._wanted = HEAD_BYTES if upload.length is None else min(HEAD_BYTES, upload.length)
        self._head = bytearray()

    async def prepare(self, storage: Storage) -> None:
        """Read back the part of the head earlier requests stored (at most a few KiB)."""
        if not self.done and self._start:
            if not storage.readable_before_finish:
                self.done = True  # cannot read it back yet: judged at completion instead
                return
            self._head += await _read(storage, self._upload.storage, 0, self._start)

    def feed(self, chunk: bytes) -> None:
        if self.done:
            return
        self._head += chunk[: self._wanted - len(self._head)]
        if len(self._head) >= self._wanted:
            self._judge()

    def end(self) -> None:
        """The body ended: a file shorter than a head is judged whole."""
        length = self._upload.length
        if not self.done and length is not None and len(self._head) >= length:
            self._judge()

    def _judge(self) -> None:
        assert self._inspector is not None
        self.done = True
        self.sniffed = sniff(bytes(self._head))
        self._inspector.policy.check(self.sniffed, declared_type(self._upload.metadata))


class Inspector:
    def __init__(self, policy: ContentPolicy, scanner: ClamdScanner | None = None) -> None:
        self.policy = policy
        self.scanner = scanner

    def screen(self, upload: Upload, start: int) -> Screen:
        """A screen for a request writing ``upload`` from ``start``."""
        return Screen(self, upload, start)

    # -- at completion ---------------------------------------------------------------------

    async def inspect(self, storage: Storage, upload: Upload) -> str | None:
        """Check a fully received upload; returns its sniffed type.

        Raises a ``ChunkdError`` when the file is refused, ``ScannerUnavailable`` when it
        cannot be scanned now.
        """
        if upload.partial:
            return None  # a piece of a file: the final upload joining the pieces is inspected
        length = upload.length or 0
        sniffed = upload.sniffed_type
        if sniffed is None and length and isinstance(storage, SupportsDownload):
            # never screened as it arrived (a concatenated upload): judge it now
            sniffed = sniff(await _read(storage, upload.storage, 0, min(HEAD_BYTES, length)))
            self.policy.check(sniffed, declared_type(upload.metadata))
        if sniffed == MRC and isinstance(storage, SupportsDownload):
            from chunkd.validation.mrc import check_mrc_header

            check_mrc_header(await _read(storage, upload.storage, 0, _MRC_HEAD), length)
        if self.scanner is not None and isinstance(storage, SupportsDownload):
            result = await self.scanner.scan(storage.read(upload.storage, 0, length))
            if not result.clean:
                raise InfectedFile(f"the virus scanner found {result.signature}")
        return sniffed


async def _read(storage: Storage, handle: Handle, start: int, stop: int) -> bytes:
    if stop <= start or not isinstance(storage, SupportsDownload):
        return b""
    return b"".join([chunk async for chunk in storage.read(handle, start, stop)])


__all__ = ["ChunkdError", "InfectedFile", "Inspector", "Screen", "declared_type"]
