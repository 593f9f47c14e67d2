"""crc32c_combine against the crc32c of the joined bytes."""

from __future__ import annotations

import os

import crc32c
import pytest

from chunkd.protocol.crc_combine import crc32c_combine


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (b"", b""),
        (b"", b"abc"),
        (b"abc", b""),
        (b"a", b"b"),
        (b"123456789", b"123456789"),
        (os.urandom(1000), os.urandom(1)),
        (os.urandom(3), os.urandom(70_001)),
        (os.urandom(1 << 16), os.urandom((1 << 20) + 7)),
    ],
)
def test_the_combined_crc_is_the_crc_of_the_joined_bytes(first: bytes, second: bytes) -> None:
    combined = crc32c_combine(crc32c.crc32c(first), crc32c.crc32c(second), len(second))
    assert combined == crc32c.crc32c(first + second)


def test_many_blocks_fold_left_as_a_patch_spanning_them_does() -> None:
    blocks = [os.urandom(size) for size in (4096, 4096, 4096, 1234)]
    crc = crc32c.crc32c(blocks[0])
    for block in blocks[1:]:
        crc = crc32c_combine(crc, crc32c.crc32c(block), len(block))
    assert crc == crc32c.crc32c(b"".join(blocks))


def test_runs_past_512_mib_agree_however_they_are_split() -> None:
    # (zlib reuses its 32 powers past 2^32 bits; these use their own.) A run of 2^40 zero
    # bytes cannot be hashed here: its crc follows from doubling a 4 KiB one.
    zeros = crc32c.crc32c(b"\0" * 4096)
    crc, length = zeros, 4096
    while length < 1 << 40:
        crc = crc32c_combine(crc, crc, length)  # the run followed by itself
        length *= 2
    # zeros + run + zeros, joined left first and right first: different powers, one crc
    left = crc32c_combine(crc32c_combine(zeros, crc, length), zeros, 4096)
    right = crc32c_combine(zeros, crc32c_combine(crc, zeros, 4096), length + 4096)
    assert left == right


@pytest.mark.parametrize("length", [-1, 1 << 64])
def test_lengths_out_of_range_are_refused(length: int) -> None:
    with pytest.raises(ValueError, match="length"):
        crc32c_combine(0, 0, length)
