"""Small, real file heads built in code, one per format the sniffer must recognise.

Each is a well-formed start of a file of that format (headers by the specifications, payloads
zeroed), long enough for a magic-number library and short enough to read in a test.
"""

from __future__ import annotations

import struct


def wav(seconds: float = 0.01, rate: int = 16000, channels: int = 1) -> bytes:
    """RIFF/WAVE, PCM 16-bit: RIFF header, ``fmt `` chunk, ``data`` chunk."""
    data = bytes(int(seconds * rate) * channels * 2)
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _mp3_frames(count: int) -> bytes:
    # MPEG-1 Layer III, no CRC, 128 kbit/s, 44.1 kHz, joint stereo: 417-byte frames.
    frame = b"\xff\xfb\x90\x64" + bytes(417 - 4)
    return frame * count


def mp3(*, id3: bool) -> bytes:
    """MPEG audio frames, optionally after an ID3v2.4 tag holding one title frame."""
    frames = _mp3_frames(6)
    if not id3:
        return frames
    text = b"\x03Dictation"  # encoding UTF-8, then the text
    tit2 = b"TIT2" + struct.pack(">I", len(text)) + b"\x00\x00" + text
    size = len(tit2)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x04\x00\x00" + syncsafe + tit2 + frames


def flac() -> bytes:
    """``fLaC`` then a last-block STREAMINFO (34 bytes) and a frame sync code."""
    # min/max block 4096, frame sizes unknown, 44.1 kHz, 2 channels, 16 bits, 0 samples, no MD5.
    info = struct.pack(">HH", 4096, 4096) + bytes(6)
    packed = (44100 << 44) | ((2 - 1) << 41) | ((16 - 1) << 36)
    info += packed.to_bytes(8, "big") + bytes(16)
    return b"fLaC" + b"\x80" + len(info).to_bytes(3, "big") + info + b"\xff\xf8" + bytes(64)


def _ogg_page(packet: bytes, *, bos: bool) -> bytes:
    header = b"OggS" + bytes([0, 0x02 if bos else 0x00])
    header += struct.pack("<qIII", 0, 0x1234ABCD, 0, 0)  # granule, serial, sequence, crc
    header += bytes([1, len(packet)])  # one segment
    return header + packet


def ogg_opus() -> bytes:
    """An Ogg page with the ``OpusHead`` identification header (RFC 7845)."""
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 6) + b"chunkd" + struct.pack("<I", 0)
    return _ogg_page(head, bos=True) + _ogg_page(tags, bos=False)


def ogg_vorbis() -> bytes:
    """An Ogg page with the Vorbis identification header."""
    ident = b"\x01vorbis" + struct.pack("<IBIiiiBB", 0, 2, 44100, 0, 128000, 0, 0xB8, 1)
    return _ogg_page(ident, bos=True) + bytes(64)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def m4a() -> bytes:
    """An MP4 file as Apple's recorders write it: ``ftyp`` brand ``M4A ``, then ``mdat``."""
    ftyp = _box(b"ftyp", b"M4A " + struct.pack(">I", 0) + b"M4A mp42isom" + bytes(4))
    return ftyp + _box(b"free", bytes(8)) + _box(b"mdat", bytes(128))


def mp4_audio_generic_brand() -> bytes:
    """An audio-only MP4 with a generic brand (``isom``) whose ``moov`` comes first."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41")
    hdlr = _box(b"hdlr", bytes(4) + bytes(4) + b"soun" + bytes(12) + b"SoundHandler\x00")
    moov = _box(b"moov", _box(b"trak", _box(b"mdia", hdlr)))
    return ftyp + moov + _box(b"mdat", bytes(128))


def mp4_video() -> bytes:
    """An MP4 with a generic brand and a video track."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41")
    hdlr = _box(b"hdlr", bytes(4) + bytes(4) + b"vide" + bytes(12) + b"VideoHandler\x00")
    moov = _box(b"moov", _box(b"trak", _box(b"mdia", hdlr)))
    return ftyp + moov + _box(b"mdat", bytes(128))


def adts_aac(frames: int = 4) -> bytes:
    """Raw AAC in ADTS frames: MPEG-4 AAC LC, 44.1 kHz, stereo, no CRC."""
    length = 7 + 32
    header = bytes(
        [
            0xFF,
            0xF1,
            0x50,
            0x80 | (length >> 11),
            (length >> 3) & 0xFF,
            ((length & 0x7) << 5) | 0x1F,
            0xFC,
        ]
    )
    return (header + bytes(32)) * frames


def _ebml(element_id: bytes, payload: bytes) -> bytes:
    assert len(payload) < 0x7F
    return element_id + bytes([0x80 | len(payload)]) + payload


def webm(codec: bytes = b"A_OPUS", *, track_type: int = 2) -> bytes:
    """An EBML header with DocType ``webm``, then a Segment with Info and one track."""
    header = _ebml(
        b"\x1a\x45\xdf\xa3",
        _ebml(b"\x42\x86", b"\x01")  # EBMLVersion
        + _ebml(b"\x42\xf7", b"\x01")  # EBMLReadVersion
        + _ebml(b"\x42\xf2", b"\x04")  # EBMLMaxIDLength
        + _ebml(b"\x42\xf3", b"\x08")  # EBMLMaxSizeLength
        + _ebml(b"\x42\x82", b"webm")  # DocType
        + _ebml(b"\x42\x87", b"\x04")  # DocTypeVersion
        + _ebml(b"\x42\x85", b"\x02"),  # DocTypeReadVersion
    )
    info = _ebml(b"\x15\x49\xa9\x66", _ebml(b"\x2a\xd7\xb1", b"\x0f\x42\x40"))
    entry = _ebml(
        b"\xae",
        _ebml(b"\xd7", b"\x01") + _ebml(b"\x83", bytes([track_type])) + _ebml(b"\x86", codec),
    )
    tracks = _ebml(b"\x16\x54\xae\x6b", entry)
    segment = b"\x18\x53\x80\x67" + b"\x01\xff\xff\xff\xff\xff\xff\xff" + info + tracks
    return header + segment + bytes(64)


def elf() -> bytes:
    """A 64-bit little-endian ELF header (x86-64 executable)."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    rest = struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, 0x401000, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    return ident + rest + bytes(64)


def zip_archive() -> bytes:
    """A ZIP local file header for a stored file ``a.txt``."""
    name = b"a.txt"
    data = b"hello"
    local = b"PK\x03\x04" + struct.pack(
        "<HHHHHIIIHH", 20, 0, 0, 0, 0, 0x3610A686, 5, 5, len(name), 0
    )
    return local + name + data + b"PK\x01\x02" + bytes(42)


def pdf() -> bytes:
    return b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"


def png() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + bytes(4)
