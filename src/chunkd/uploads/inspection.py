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

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

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


@dataclass
class Screen:
    """The outcome of screening one request body: the type, once it is known."""

    sniffed: str | None = None
    done: bool = False


class Inspector:
    def __init__(self, policy: ContentPolicy, scanner: ClamdScanner | None = None) -> None:
        self.policy = policy
        self.scanner = scanner

    # -- as bytes arrive -------------------------------------------------------------------

    def screen(
        self,
        storage: Storage,
        upload: Upload,
        start: int,
        body: AsyncIterator[bytes],
        screen: Screen,
    ) -> AsyncIterator[bytes]:
        """``body`` (written from ``start``), held back until the head can be judged."""
        if upload.sniffed_type is not None or start >= HEAD_BYTES or upload.partial:
            # partial uploads are pieces from anywhere in a file: the joined one is judged
            screen.done = True
            return body
        return self._screened(storage, upload, start, body, screen)

    async def _screened(
        self,
        storage: Storage,
        upload: Upload,
        start: int,
        body: AsyncIterator[bytes],
        screen: Screen,
    ) -> AsyncIterator[bytes]:
        wanted = HEAD_BYTES if upload.length is None else min(HEAD_BYTES, upload.length)
        head = bytearray(await _read(storage, upload.storage, 0, start) if start else b"")
        async for chunk in body:
            if not screen.done:
                head += chunk[: wanted - len(head)]
                if len(head) >= wanted:
                    # judged before this chunk is written; the few KiB before it were
                    # written but are not acknowledged unless the head passes
                    self._judge(bytes(head), upload, screen)
            yield chunk
        if not screen.done and upload.length is not None and len(head) >= upload.length:
            self._judge(bytes(head), upload, screen)  # the whole file is shorter than a head

    def _judge(self, head: bytes, upload: Upload, screen: Screen) -> None:
        screen.sniffed = sniff(head)
        screen.done = True
        self.policy.check(screen.sniffed, declared_type(upload.metadata))

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
