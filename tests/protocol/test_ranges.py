from __future__ import annotations

import pytest

from chunkd.protocol.ranges import ByteRange, RangeNotSatisfiable, parse_range


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("bytes=0-99", ByteRange(0, 100)),
        ("bytes=0-0", ByteRange(0, 1)),
        ("bytes=500-", ByteRange(500, 1000)),
        ("bytes=990-5000", ByteRange(990, 1000)),
        ("bytes=-100", ByteRange(900, 1000)),
        ("bytes=-5000", ByteRange(0, 1000)),
        ("bytes=0-1,5-6", None),  # several ranges: whole file
        ("bytes=5-1", None),  # invalid: ignored
        ("items=0-1", None),
        ("bytes=-", None),
    ],
)
def test_ranges(value: str | None, expected: ByteRange | None) -> None:
    assert parse_range(value, 1000) == expected


@pytest.mark.parametrize("value", ["bytes=1000-", "bytes=2000-3000", "bytes=-0"])
def test_unsatisfiable(value: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(value, 1000)


def test_content_range() -> None:
    assert ByteRange(0, 100).content_range(1000) == "bytes 0-99/1000"
