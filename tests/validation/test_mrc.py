from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from chunkd.exceptions import ValidationFailed
from chunkd.validation.mrc import HEADER_SIZE, MrcInfo, check_mrc_header
from chunkd.validation.sniff import HEAD_BYTES, MRC, sniff


def write_mrc(path: Path, data: np.ndarray, **settings: object) -> bytes:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        for name, value in settings.items():
            if name == "extended_header":
                mrc.set_extended_header(value)
            else:
                setattr(mrc, name, value)
    return path.read_bytes()


def check(content: bytes, size: int | None = None) -> MrcInfo:
    return check_mrc_header(content[:HEAD_BYTES], len(content) if size is None else size)


@pytest.mark.parametrize(
    ("dtype", "mode"),
    [
        (np.int8, 0),
        (np.int16, 1),
        (np.float32, 2),
        (np.complex64, 4),
        (np.uint16, 6),
        (np.float16, 12),
    ],
)
def test_valid_files_of_every_mode(tmp_path: Path, dtype: type, mode: int) -> None:
    content = write_mrc(tmp_path / "a.mrc", np.zeros((3, 4, 5), dtype=dtype), voxel_size=1.25)
    assert sniff(content[:HEAD_BYTES]) == MRC
    info = check(content)
    assert (info.nx, info.ny, info.nz, info.mode) == (5, 4, 3, mode)
    assert info.voxel_size == (1.25, 1.25, 1.25)
    assert info.expected_size == len(content)
    assert info.byte_order == "<"


def test_image_stack_with_extended_header(tmp_path: Path) -> None:
    ext = np.zeros(10, dtype=[("a", "<i4")])
    data = np.arange(2 * 6 * 7, dtype=np.int16).reshape(2, 6, 7)
    content = write_mrc(tmp_path / "s.mrc", data, extended_header=ext)
    info = check(content)
    assert (info.nx, info.ny, info.nz, info.ext_header_size) == (7, 6, 2, 40)
    assert len(content) == HEADER_SIZE + 40 + 7 * 6 * 2 * 2


def test_big_endian_file(tmp_path: Path) -> None:
    content = write_mrc(tmp_path / "b.mrc", np.zeros((2, 3, 4), dtype=">i2"))
    info = check(content)
    assert (info.nx, info.ny, info.nz, info.mode, info.byte_order) == (4, 3, 2, 1, ">")


def test_a_head_shorter_than_the_file(tmp_path: Path) -> None:
    content = write_mrc(tmp_path / "l.mrc", np.zeros((4, 64, 64), dtype=np.float32))
    assert check_mrc_header(content[:HEADER_SIZE], len(content)).nz == 4


def patched(content: bytes, offset: int, fmt: str, *values: int) -> bytes:
    changed = bytearray(content)
    struct.pack_into(fmt, changed, offset, *values)
    return bytes(changed)


@pytest.fixture
def good(tmp_path: Path) -> bytes:
    return write_mrc(tmp_path / "g.mrc", np.zeros((3, 4, 5), dtype=np.float32))


@pytest.mark.parametrize(
    ("corrupt", "message", "detail"),
    [
        (lambda c: c[:-1], "shorter than the 1264 bytes", {"expected_size": 1264}),
        (lambda c: c[:HEADER_SIZE], "shorter than the 1264 bytes", {"size": 1024}),
        (lambda c: c + b"\0" * 4, "longer than the 1264 bytes", {"size": 1268}),
        (lambda c: patched(c, 12, "<i", 5), "unknown mode 5", {"mode": 5}),
        (lambda c: patched(c, 12, "<i", -1), "unknown mode -1", {"mode": -1}),
        (lambda c: patched(c, 0, "<i", 0), r"positive, got 0 x 4 x 3", {"nx": 0}),
        (lambda c: patched(c, 8, "<i", -3), r"positive, got 5 x 4 x -3", {"nz": -3}),
        (lambda c: patched(c, 92, "<i", -8), "negative extended header", {"nsymbt": -8}),
        (lambda c: patched(c, 92, "<i", 16), "shorter than the 1280 bytes", {"nsymbt": 16}),
        (lambda c: c[:208] + b"XXXX" + c[212:], "no 'MAP ' mark", {"format": "mrc"}),
        (lambda c: c[:500], "only 500 were given", {"head_bytes": 500}),
    ],
    ids=[
        "one byte short",
        "header only",
        "four bytes extra",
        "mode 5",
        "mode -1",
        "nx zero",
        "nz negative",
        "nsymbt negative",
        "nsymbt not in the size",
        "no MAP",
        "head too short",
    ],
)
def test_corrupt_files_are_refused(
    good: bytes, corrupt: object, message: str, detail: dict[str, object]
) -> None:
    assert callable(corrupt)
    content = corrupt(good)
    with pytest.raises(ValidationFailed, match=message) as caught:
        check(content)
    error = caught.value
    assert (error.status, error.code) == (422, "VALIDATION_FAILED")
    assert error.details is not None
    assert detail.items() <= error.details.items()


def test_mode_101_is_four_bits_a_voxel_rows_padded_to_a_byte(good: bytes) -> None:
    # 5 x 4 x 3 voxels: rows of 5 half-bytes take 3 bytes.
    header = patched(good, 12, "<i", 101)[:HEADER_SIZE]
    info = check_mrc_header(header, HEADER_SIZE + 3 * 4 * 3)
    assert (info.mode, info.mode_name) == (101, "4-bit packed")
    with pytest.raises(ValidationFailed, match="longer"):
        check_mrc_header(header, HEADER_SIZE + 5 * 4 * 3)


def test_unknown_machine_stamp_falls_back_to_the_plausible_byte_order(tmp_path: Path) -> None:
    content = write_mrc(tmp_path / "b.mrc", np.zeros((2, 3, 4), dtype=">i2"))
    content = content[:212] + b"\0\0\0\0" + content[216:]
    assert check(content).byte_order == ">"


def test_random_bytes_with_a_map_mark_are_refused() -> None:
    content = bytearray(os.urandom(HEAD_BYTES))
    content[208:212] = b"MAP "
    with pytest.raises(ValidationFailed):
        check(bytes(content))


def test_importing_the_validation_package_does_not_load_numpy() -> None:
    code = (
        "import sys\n"
        "import chunkd.validation.sniff, chunkd.validation.mrc, chunkd.validation.clamav\n"
        "assert 'numpy' not in sys.modules and 'mrcfile' not in sys.modules, 'loaded'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
