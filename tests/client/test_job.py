"""The part size the client asks for when it is not told one."""

from __future__ import annotations

import pytest

from chunkd.client._job import sending_part_size
from chunkd.protocol.parts import MAX_PARTS, default_part_size, part_count

MiB = 1024 * 1024
GiB = 1024 * MiB


@pytest.mark.parametrize(
    ("size", "part"),
    [
        (0, 1 * MiB),
        (10_000_000, 1 * MiB),  # small files: the server's own rule
        (50_000_000, 5 * MiB),
        (300 * MiB, 10 * MiB),
        (640 * MiB, 10 * MiB),  # 64 parts of 10 MiB: still the server's rule
        (640 * MiB + 1, 11 * MiB),
        (1 * GiB, 16 * MiB),
        (2 * GiB, 32 * MiB),
        (4 * GiB, 64 * MiB),
        (10 * GiB, 64 * MiB),  # capped: 160 parts
        (1024 * GiB, 105 * MiB),  # the server's 10,000-part rule needs more than the cap
    ],
)
def test_large_files_go_in_about_64_parts(size: int, part: int) -> None:
    assert sending_part_size(size) == part
    assert sending_part_size(size) >= default_part_size(size)
    assert part_count(size, part) <= MAX_PARTS
