"""HTTP ``Range`` requests (RFC 9110 §14) for downloads: one byte range or the whole file."""

from __future__ import annotations

import re
from dataclasses import dataclass

_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")


class RangeNotSatisfiable(Exception):
    """The range lies wholly outside the representation: answer 416."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    stop: int  # exclusive

    def content_range(self, length: int) -> str:
        return f"bytes {self.start}-{self.stop - 1}/{length}"


def parse_range(value: str | None, length: int) -> ByteRange | None:
    """The single range asked for, or ``None`` to send the whole file.

    Several ranges, or a header we cannot read, are answered with the whole file, which the
    RFC allows (a server MAY ignore Range).
    """
    if value is None:
        return None
    match = _RANGE.fullmatch(value.strip())
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":  # a suffix: the last N bytes
        count = int(last)
        if count == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(0, length - count), length)
    start = int(first)
    stop = length if last == "" else min(int(last) + 1, length)
    if last != "" and int(last) < start:
        return None  # invalid range: ignore the header
    if start >= length:
        raise RangeNotSatisfiable
    return ByteRange(start, stop)
