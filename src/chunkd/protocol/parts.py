"""Part sizing and part bookkeeping for upload sessions (pure arithmetic, no I/O).

The server picks the part size when the client does not: 1 MiB for files under 25 MB, 5 MiB
under 100 MB, 10 MiB above, grown (in whole MiB) until the file fits in at most 10,000 parts.
A client's own part size is honoured when it lies within [MIN_PART_SIZE, MAX_PART_SIZE] and
keeps the file within 10,000 parts. (MB here is 10^6 bytes; part sizes are binary.)
"""

from __future__ import annotations

from collections.abc import Iterable

MiB = 1024 * 1024
MAX_PARTS = 10_000
MIN_PART_SIZE = 64 * 1024
MAX_PART_SIZE = 5 * 1024 * MiB

_TIERS = ((25_000_000, 1 * MiB), (100_000_000, 5 * MiB))
_LARGE = 10 * MiB


class PartSizeError(ValueError):
    """A requested part size is outside the bounds for this file."""


def default_part_size(size: int, minimum: int = 0) -> int:
    base = max(minimum, next((part for limit, part in _TIERS if size < limit), _LARGE))
    smallest = -(-size // MAX_PARTS)  # ceil: the least part size that fits in MAX_PARTS
    if smallest <= base:
        return base
    return -(-smallest // MiB) * MiB


def choose_part_size(size: int, requested: int | None = None, *, minimum: int = 0) -> int:
    """The part size for a ``size``-byte file; ``minimum`` is the storage's own floor (S3
    needs 5 MiB parts), on top of these rules."""
    if size < 0:
        raise PartSizeError("the file size cannot be negative")
    if requested is None:
        return default_part_size(size, minimum)
    if not max(MIN_PART_SIZE, minimum) <= requested <= MAX_PART_SIZE:
        raise PartSizeError(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes")
    if part_count(size, requested) > MAX_PARTS:
        raise PartSizeError(
            f"part_size {requested} would need more than {MAX_PARTS} parts; "
            f"use at least {-(-size // MAX_PARTS)}"
        )
    return requested


def part_count(size: int, part_size: int) -> int:
    """Parts needed for ``size`` bytes (none for an empty file)."""
    return -(-size // part_size)


def part_span(index: int, size: int, part_size: int) -> tuple[int, int]:
    """``(start, length)`` of part ``index``; only the last part may be shorter."""
    start = index * part_size
    return start, max(0, min(part_size, size - start))


def missing_ranges(received: Iterable[int], count: int) -> list[list[int]]:
    """Indices in ``range(count)`` not in ``received``, as inclusive ``[first, last]`` runs."""
    have = set(received)
    ranges: list[list[int]] = []
    for index in range(count):
        if index in have:
            continue
        if ranges and ranges[-1][1] == index - 1:
            ranges[-1][1] = index
        else:
            ranges.append([index, index])
    return ranges
