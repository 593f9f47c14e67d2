"""Is an MRC file (cryo-EM map or image stack) whole and consistent with its own header?

``check_mrc_header`` needs only the first 1024 bytes (the main header) and the file's size:
the size must be exactly header + extended header + voxels, which catches truncated and padded
uploads and files that merely carry the ``MAP`` mark.

The header is read with ``mrcfile`` (its header record type and machine-stamp rules). It
pulls in numpy, so it is imported inside the function: a server that never receives an MRC
file never loads numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from chunkd.exceptions import ValidationFailed

__all__ = ["HEADER_SIZE", "MODE_NAMES", "MrcInfo", "check_mrc_header", "data_size"]

HEADER_SIZE: Final = 1024

MODE_NAMES: Final[dict[int, str]] = {
    0: "int8",
    1: "int16",
    2: "float32",
    3: "complex int16",
    4: "complex float32",
    6: "uint16",
    12: "float16",
    101: "4-bit packed",
}
_BYTES_PER_VOXEL: Final = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2}


@dataclass(frozen=True, slots=True)
class MrcInfo:
    nx: int
    ny: int
    nz: int
    mode: int
    ext_header_size: int
    byte_order: str  # "<" little-endian, ">" big-endian
    voxel_size: tuple[float, float, float] | None  # Ångström; None when the header has none
    exttyp: str  # extended header type ("FEI1", "CCP4", ...), "" when none

    @property
    def mode_name(self) -> str:
        return MODE_NAMES[self.mode]

    @property
    def expected_size(self) -> int:
        return HEADER_SIZE + self.ext_header_size + data_size(self.nx, self.ny, self.nz, self.mode)


def data_size(nx: int, ny: int, nz: int, mode: int) -> int:
    """Bytes of voxel data. Mode 101 packs two 4-bit voxels a byte, each row padded to a byte
    (as IMOD writes it)."""
    if mode == 101:
        return (nx + 1) // 2 * ny * nz
    return nx * ny * nz * _BYTES_PER_VOXEL[mode]


def _invalid(message: str, **details: object) -> ValidationFailed:
    return ValidationFailed(
        f"not a valid MRC file: {message}",
        hint="Upload the complete MRC file as written by the acquisition or processing software.",
        details={"format": "mrc", **details},
    )


def check_mrc_header(head: bytes, size: int) -> MrcInfo:
    """Parse and check an MRC main header; raise ``ValidationFailed`` (422) when it is wrong.

    ``head`` is the file's first bytes (at least 1024), ``size`` its full size in bytes.
    """
    import numpy as np
    from mrcfile.dtypes import HEADER_DTYPE
    from mrcfile.utils import byte_order_from_machine_stamp

    if len(head) < HEADER_SIZE:
        raise _invalid(
            f"the header is {HEADER_SIZE} bytes but only {len(head)} were given",
            head_bytes=len(head),
            size=size,
        )
    raw = bytes(head[:HEADER_SIZE])
    native = np.frombuffer(raw, dtype=HEADER_DTYPE)[0]
    if bytes(native["map"])[:3] != b"MAP":
        raise _invalid("no 'MAP ' mark at bytes 208..211 (MRC2014)", size=size)

    try:
        order = str(byte_order_from_machine_stamp(native["machst"]))
    except ValueError:
        order = _guess_byte_order(raw)
    if order not in ("<", ">"):  # "=" or "|" from mrcfile: the native order, little here
        order = "<" if np.little_endian else ">"
    header = np.frombuffer(raw, dtype=HEADER_DTYPE.newbyteorder(order))[0]

    nx, ny, nz = int(header["nx"]), int(header["ny"]), int(header["nz"])
    mode, nsymbt = int(header["mode"]), int(header["nsymbt"])
    if nx <= 0 or ny <= 0 or nz <= 0:
        raise _invalid(f"dimensions must be positive, got {nx} x {ny} x {nz}", nx=nx, ny=ny, nz=nz)
    if mode not in MODE_NAMES:
        raise _invalid(
            f"unknown mode {mode} (known: {', '.join(map(str, sorted(MODE_NAMES)))})",
            mode=mode,
        )
    if nsymbt < 0:
        raise _invalid(f"negative extended header size {nsymbt}", nsymbt=nsymbt)

    expected = HEADER_SIZE + nsymbt + data_size(nx, ny, nz, mode)
    if size != expected:
        relation = "shorter" if size < expected else "longer"
        raise _invalid(
            f"the file is {size} bytes, {relation} than the {expected} bytes its header "
            f"describes ({HEADER_SIZE} header + {nsymbt} extended header + {nx} x {ny} x {nz} "
            f"voxels of mode {mode}, {MODE_NAMES[mode]})",
            size=size,
            expected_size=expected,
            nx=nx,
            ny=ny,
            nz=nz,
            mode=mode,
            nsymbt=nsymbt,
        )

    sampling = (int(header["mx"]), int(header["my"]), int(header["mz"]))
    cell = header["cella"]
    lengths = (float(cell["x"]), float(cell["y"]), float(cell["z"]))
    voxel_size: tuple[float, float, float] | None = None
    if all(m > 0 for m in sampling) and any(length > 0 for length in lengths):
        voxel_size = (lengths[0] / sampling[0], lengths[1] / sampling[1], lengths[2] / sampling[2])
    exttyp = bytes(header["exttyp"]).decode("ascii", "replace").strip("\x00 ")
    return MrcInfo(nx, ny, nz, mode, nsymbt, order, voxel_size, exttyp)


def _guess_byte_order(raw: bytes) -> str:
    """For a missing or unknown machine stamp: the one order giving a known mode and
    positive dimensions, else little-endian (and the checks that follow will say why)."""
    import numpy as np
    from mrcfile.dtypes import HEADER_DTYPE

    plausible = []
    for order in ("<", ">"):
        header = np.frombuffer(raw, dtype=HEADER_DTYPE.newbyteorder(order))[0]
        dims = (int(header["nx"]), int(header["ny"]), int(header["nz"]))
        if int(header["mode"]) in MODE_NAMES and min(dims) > 0:
            plausible.append(order)
    return plausible[0] if len(plausible) == 1 else "<"
