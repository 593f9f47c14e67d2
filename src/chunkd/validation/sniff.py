"""What a file is, from its first bytes, and whether this server accepts it.

The magic-number library is ``filetype`` (PyPI). Both candidates were run on the sample heads
of ``tests/validation/samples.py``:

- ``filetype`` named every one correctly: WAV, MP3 with and without ID3, FLAC, Ogg (Opus and
  Vorbis), M4A (``ftyp M4A``), raw AAC (ADTS), WebM, ELF, ZIP, PDF and PNG. It is pure Python
  with no dependencies, reads at most the first 8192 bytes it is given, and its matchers are
  short and readable, which matters for a check that refuses uploads.
- ``puremagic`` (larger database, typed, more frequent releases) gave no MIME type at all for
  M4A and ELF, called a plain ZIP a Word document (``...wordprocessingml.document``: its
  Office Open XML rule only looks at ``PK\\x03\\x04``) and called Ogg/Opus "Ogg Vorbis".

``filetype`` has no type hints (see the mypy override in pyproject.toml) and is only called
here. Its answers are then sharpened where they are loose:

- MRC (cryo-EM maps and stacks) is ours: MRC2014 files carry ``MAP `` at bytes 208..211.
  Older MRC files without it are *not* recognised: telling them from arbitrary binary data
  needs plausibility checks on the header (mode, dims, axis order) and the file's size, which a
  sniffer of the first bytes cannot make robustly; ``check_mrc_header`` does the full check.
- MP3 without ID3 and raw AAC (ADTS) are matched by ``filetype`` on two bytes; here the frame
  header must be valid and, when the head is long enough, the next frame must start where the
  first one ends. An ID3 tag is skipped and what follows it is sniffed again (ID3 is also
  put in front of AAC and FLAC, and an ID3 tag does not make an executable audio).
- Ogg is named after its first stream's codec (Opus, Vorbis, FLAC, Speex: ``audio/ogg``,
  RFC 7845; Theora: ``video/ogg``; anything else: ``application/ogg``).
- WebM and generic-brand MP4 are ``video/*`` unless the head shows audio tracks only (WebM
  ``CodecID`` ``A_...``; MP4 ``hdlr`` ``soun``), then ``audio/webm`` / ``audio/mp4``.

Aliases are normalised (``audio/x-wav`` -> ``audio/wav``, ...) so allow-lists stay simple.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import filetype

from chunkd.exceptions import UnsupportedMediaType

__all__ = [
    "HEAD_BYTES",
    "MRC",
    "PRESETS",
    "ContentPolicy",
    "allowed_types",
    "normalise",
    "sniff",
]

HEAD_BYTES: int = 4096
"""How many first bytes ``sniff`` wants; fewer work when the file is shorter."""

MRC: Final = "application/x-mrc"

_GENERIC: Final = frozenset(
    {"", "application/octet-stream", "binary/octet-stream", "application/x-binary"}
)

_ALIASES: Final[dict[str, str]] = {
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/x-pn-wav": "audio/wav",
    "audio/x-flac": "audio/flac",
    "audio/mp3": "audio/mpeg",
    "audio/x-mp3": "audio/mpeg",
    "audio/mpeg3": "audio/mpeg",
    "audio/x-mpeg": "audio/mpeg",
    "audio/x-mpeg-3": "audio/mpeg",
    "audio/mpg": "audio/mpeg",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "audio/x-mp4": "audio/mp4",
    "audio/x-aac": "audio/aac",
    "audio/aacp": "audio/aac",
    "audio/x-hx-aac-adts": "audio/aac",
    "audio/x-ogg": "audio/ogg",
    "audio/opus": "audio/ogg",
    "audio/vorbis": "audio/ogg",
    "audio/x-opus+ogg": "audio/ogg",
    "audio/x-vorbis+ogg": "audio/ogg",
    "audio/x-flac+ogg": "audio/ogg",
    "audio/x-webm": "audio/webm",
    "application/x-zip-compressed": "application/zip",
    "application/x-zip": "application/zip",
    "application/x-pdf": "application/pdf",
    "application/x-elf": "application/x-executable",
    "application/x-sharedlib": "application/x-executable",
    "application/mrc": MRC,
    "image/x-mrc": MRC,
}

# Types that name one container; a declared type and a sniffed one in different groups
# contradict each other. Within a group (e.g. audio/aac declared for an M4A) they do not.
_GROUPS: Final[dict[str, str]] = {
    "audio/wav": "wav",
    "audio/mpeg": "mpeg-audio",
    "audio/flac": "flac",
    "audio/ogg": "ogg",
    "video/ogg": "ogg",
    "application/ogg": "ogg",
    "audio/mp4": "mp4",
    "video/mp4": "mp4",
    "audio/aac": "mp4",  # AAC is the codec of M4A; clients mix the two names up
    "audio/webm": "matroska",
    "video/webm": "matroska",
    "video/x-matroska": "matroska",
    "audio/x-matroska": "matroska",
    "application/zip": "zip",
    "application/pdf": "pdf",
    "application/x-executable": "executable",
    "image/png": "png",
    "image/jpeg": "jpeg",
    MRC: "mrc",
}

PRESETS: dict[str, frozenset[str]] = {
    "audio": frozenset(
        {
            "audio/wav",
            "audio/mpeg",
            "audio/flac",
            "audio/ogg",
            "audio/mp4",
            "audio/aac",
            "audio/webm",
        }
    ),
    "mrc": frozenset({MRC}),
}


def normalise(mime: str) -> str:
    """``Audio/X-WAV; codecs=1`` -> ``audio/wav``: lower case, no parameters, no alias."""
    base = mime.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def sniff(head: bytes) -> str | None:
    """The MIME type of a file from its first bytes (``HEAD_BYTES`` or fewer), or None."""
    head = bytes(head[:HEAD_BYTES])
    if len(head) < 4:
        return None
    if _is_mrc(head):
        return MRC
    if head.startswith(b"ID3"):
        return _after_id3(head)
    guessed = filetype.guess_mime(head)
    if guessed is None:
        return None
    kind = normalise(str(guessed))
    if kind == "audio/mpeg":
        return kind if _mpeg_frames_plausible(head) else None
    if kind == "audio/aac":
        return kind if _adts_frames_plausible(head) else None
    if kind == "audio/ogg":
        return _ogg_kind(head)
    if kind == "video/webm":
        return _webm_kind(head)
    if kind == "video/mp4":
        return _mp4_kind(head)
    return kind


def _is_mrc(head: bytes) -> bool:
    # MRC2014: "MAP " at 208; mrcfile also accepts "MAP" followed by anything.
    return len(head) >= 212 and head[208:211] == b"MAP"


def _after_id3(head: bytes) -> str | None:
    if len(head) < 10 or any(b & 0x80 for b in head[6:10]):
        return None
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    end = 10 + size + (10 if head[5] & 0x10 else 0)  # footer flag
    rest = head[end:].lstrip(b"\x00")  # padding some writers leave outside the tag
    if len(rest) < 4:
        return "audio/mpeg"  # the tag fills the head: what follows is out of sight
    inner = sniff(rest)
    return "audio/mpeg" if inner is None else inner


_MPEG1_L3_KBPS: Final = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MPEG2_L3_KBPS: Final = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_MPEG1_RATES: Final = (44100, 48000, 32000)
_MPEG2_RATES: Final = (22050, 24000, 16000)


def _mpeg_frame_length(header: bytes) -> int | None:
    """Length of an MPEG-1/2 Layer III frame from its 4-byte header; 0 for free format."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version = (header[1] >> 3) & 0x3
    layer = (header[1] >> 1) & 0x3
    if layer != 0x1 or version not in (0x2, 0x3):
        return None
    bitrate_index = header[2] >> 4
    rate_index = (header[2] >> 2) & 0x3
    if bitrate_index == 0xF or rate_index == 0x3:
        return None
    if bitrate_index == 0:
        return 0
    padding = (header[2] >> 1) & 0x1
    if version == 0x3:
        kbps, rate, factor = _MPEG1_L3_KBPS[bitrate_index], _MPEG1_RATES[rate_index], 144
    else:
        kbps, rate, factor = _MPEG2_L3_KBPS[bitrate_index], _MPEG2_RATES[rate_index], 72
    return factor * kbps * 1000 // rate + padding


def _mpeg_frames_plausible(head: bytes) -> bool:
    length = _mpeg_frame_length(head)
    if length is None:
        return False
    if length == 0 or len(head) < length + 4:
        return True  # free format, or the next frame is out of sight
    return _mpeg_frame_length(head[length : length + 4]) is not None


def _adts_frame_length(header: bytes) -> int | None:
    if len(header) < 7 or header[0] != 0xFF or header[1] & 0xF6 != 0xF0:
        return None
    if (header[2] >> 2) & 0xF > 12:  # sampling frequency index
        return None
    length = ((header[3] & 0x3) << 11) | (header[4] << 3) | (header[5] >> 5)
    return length if length >= 7 else None


def _adts_frames_plausible(head: bytes) -> bool:
    length = _adts_frame_length(head)
    if length is None:
        return False
    if len(head) < length + 7:
        return True
    return _adts_frame_length(head[length : length + 7]) is not None


_OGG_AUDIO: Final = (b"OpusHead", b"\x01vorbis", b"\x7fFLAC", b"Speex   ")


def _ogg_kind(head: bytes) -> str:
    if len(head) < 27:
        return "application/ogg"
    packet = head[27 + head[26] :]
    if packet.startswith(_OGG_AUDIO):
        return "audio/ogg"
    if packet.startswith(b"\x80theora"):
        return "video/ogg"
    return "application/ogg"


# A Matroska CodecID element (0x86), a one- or two-byte size, then "A_OPUS", "V_VP8", ...
_CODEC_ID = re.compile(rb"\x86(?:[\x81-\xbf]|\x40[\x01-\x3f])([AVSB])_[A-Z0-9]")


def _webm_kind(head: bytes) -> str:
    kinds = {m.group(1) for m in _CODEC_ID.finditer(head)}
    return "audio/webm" if kinds == {b"A"} else "video/webm"


def _mp4_kind(head: bytes) -> str:
    handlers = set()
    start = head.find(b"hdlr")
    while start != -1:
        handlers.add(head[start + 12 : start + 16])
        start = head.find(b"hdlr", start + 4)
    return "audio/mp4" if handlers & {b"soun", b"vide"} == {b"soun"} else "video/mp4"


def allowed_types(spec: Sequence[str]) -> frozenset[str] | None:
    """Expand preset names and MIME types, e.g. ``["audio", "application/pdf"]``.

    An empty spec gives None: every type is allowed.
    """
    allowed: set[str] = set()
    for raw in spec:
        item = raw.strip()
        if not item:
            continue
        if "/" in item:
            allowed.add(normalise(item))
        elif item.lower() in PRESETS:
            allowed |= PRESETS[item.lower()]
        else:
            raise ValueError(
                f"unknown content type preset {item!r}: give one of "
                f"{', '.join(sorted(PRESETS))} or a MIME type such as application/pdf"
            )
    return frozenset(allowed) if allowed else None


class ContentPolicy:
    """Which sniffed types are accepted, and that a declared type does not contradict them."""

    def __init__(self, allowed: frozenset[str] | None) -> None:
        self.allowed = None if allowed is None else frozenset(normalise(t) for t in allowed)

    def check(self, sniffed: str | None, declared: str | None) -> None:
        """Raise ``UnsupportedMediaType`` (415) unless the file may be accepted."""
        kind = None if sniffed is None else normalise(sniffed)
        details: dict[str, object] = {"sniffed": kind, "declared": declared}
        if self.allowed is not None:
            details["allowed"] = sorted(self.allowed)
            accepted = ", ".join(sorted(self.allowed))
            if kind is None:
                raise UnsupportedMediaType(
                    "the file's type could not be recognised from its first bytes",
                    hint=f"This server accepts: {accepted}.",
                    details=details,
                )
            if kind not in self.allowed:
                raise UnsupportedMediaType(
                    f"the file is {kind}, which this server does not accept",
                    hint=f"This server accepts: {accepted}.",
                    details=details,
                )
        if kind is not None and declared is not None and _contradicts(normalise(declared), kind):
            raise UnsupportedMediaType(
                f"the file was declared as {normalise(declared)} but its bytes are {kind}",
                hint="Declare the file's real type, or none (application/octet-stream).",
                details=details,
            )


def _contradicts(declared: str, sniffed: str) -> bool:
    if declared in _GENERIC or declared == sniffed:
        return False
    declared_group, sniffed_group = _GROUPS.get(declared), _GROUPS.get(sniffed)
    if declared_group is not None and sniffed_group is not None:
        return declared_group != sniffed_group
    # A type we do not know: only a different top-level family is a clear contradiction.
    media = {"audio", "video"}
    top_declared, top_sniffed = declared.split("/", 1)[0], sniffed.split("/", 1)[0]
    if top_declared in media and top_sniffed in media:
        return False
    return top_declared != top_sniffed
