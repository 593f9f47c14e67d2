from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chunkd.protocol.parts import (
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    MiB,
    PartSizeError,
    choose_part_size,
    missing_ranges,
    part_count,
    part_span,
)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, MiB),
        (1, MiB),
        (25_000_000 - 1, MiB),
        (25_000_000, 5 * MiB),
        (25_000_000 + 1, 5 * MiB),
        (100_000_000 - 1, 5 * MiB),
        (100_000_000, 10 * MiB),
        (100_000_000 + 1, 10 * MiB),
        (10 * 1024 * MiB, 10 * MiB),
        (10_000 * 10 * MiB, 10 * MiB),  # exactly 10,000 parts of 10 MiB
        (10_000 * 10 * MiB - 1, 10 * MiB),
        (10_000 * 10 * MiB + 1, 11 * MiB),  # one byte more: grow to keep 10,000 parts
        (1024**4, 105 * MiB),  # 1 TiB
    ],
)
def test_server_chosen_part_sizes(size: int, expected: int) -> None:
    assert choose_part_size(size) == expected
    assert part_count(size, expected) <= MAX_PARTS


@given(st.integers(min_value=0, max_value=40 * 1024**4))
def test_never_more_than_10000_parts(size: int) -> None:
    part_size = choose_part_size(size)
    assert part_count(size, part_size) <= MAX_PARTS
    assert part_size % MiB == 0


@pytest.mark.parametrize(
    ("size", "requested", "ok"),
    [
        (100, MIN_PART_SIZE, True),
        (100, MIN_PART_SIZE - 1, False),
        (100, MAX_PART_SIZE, True),
        (100, MAX_PART_SIZE + 1, False),
        (MIN_PART_SIZE * MAX_PARTS, MIN_PART_SIZE, True),
        (MIN_PART_SIZE * MAX_PARTS + 1, MIN_PART_SIZE, False),
    ],
)
def test_client_part_size_within_bounds(size: int, requested: int, ok: bool) -> None:
    if ok:
        assert choose_part_size(size, requested) == requested
    else:
        with pytest.raises(PartSizeError):
            choose_part_size(size, requested)


def test_part_spans() -> None:
    assert part_count(0, 10) == 0
    assert part_count(10, 10) == 1
    assert part_count(11, 10) == 2
    assert part_span(0, 25, 10) == (0, 10)
    assert part_span(2, 25, 10) == (20, 5)
    assert part_span(0, 0, 10) == (0, 0)


def test_missing_ranges() -> None:
    assert missing_ranges([], 3) == [[0, 2]]
    assert missing_ranges([0, 1, 2], 3) == []
    received = [0, 1, 2, 3, 10, 11, 13, 14]
    assert missing_ranges(received, 15) == [[4, 9], [12, 12]]
