from __future__ import annotations

import os
import struct

import pytest

from chunkd.exceptions import UnsupportedMediaType
from chunkd.validation.sniff import (
    HEAD_BYTES,
    MRC,
    PRESETS,
    ContentPolicy,
    allowed_types,
    normalise,
    sniff,
)
from tests.validation import samples


def mrc_head() -> bytes:
    header = bytearray(1024)
    struct.pack_into("<iiii", header, 0, 64, 64, 10, 2)
    header[208:212] = b"MAP "
    header[212:216] = b"\x44\x44\x00\x00"
    return bytes(header) + bytes(HEAD_BYTES - 1024)


SNIFFED = [
    ("wav", samples.wav(), "audio/wav"),
    ("mp3 with ID3", samples.mp3(id3=True), "audio/mpeg"),
    ("mp3 without ID3", samples.mp3(id3=False), "audio/mpeg"),
    ("flac", samples.flac(), "audio/flac"),
    ("ogg opus", samples.ogg_opus(), "audio/ogg"),
    ("ogg vorbis", samples.ogg_vorbis(), "audio/ogg"),
    ("m4a (ftyp M4A)", samples.m4a(), "audio/mp4"),
    ("mp4, generic brand, audio track only", samples.mp4_audio_generic_brand(), "audio/mp4"),
    ("mp4 with a video track", samples.mp4_video(), "video/mp4"),
    ("aac adts", samples.adts_aac(), "audio/aac"),
    ("webm audio", samples.webm(), "audio/webm"),
    ("webm video", samples.webm(b"V_VP8", track_type=1), "video/webm"),
    ("elf", samples.elf(), "application/x-executable"),
    ("zip", samples.zip_archive(), "application/zip"),
    ("pdf", samples.pdf(), "application/pdf"),
    ("png", samples.png(), "image/png"),
    ("mrc2014", mrc_head(), MRC),
    ("id3 then flac", samples.mp3(id3=True)[:30] + samples.flac(), "audio/flac"),
    (
        "id3 then an executable",
        samples.mp3(id3=True)[:30] + samples.elf(),
        "application/x-executable",
    ),
    ("ogg theora", b"OggS" + bytes(22) + b"\x01\x2a" + b"\x80theora" + bytes(40), "video/ogg"),
    (
        "ogg, unknown codec",
        b"OggS" + bytes(22) + b"\x01\x10" + b"something" + bytes(20),
        "application/ogg",
    ),
    ("empty", b"", None),
    ("three bytes", b"RIF", None),
    ("text", b"Dear colleague, please find attached\n" * 20, None),
    ("zeros", bytes(HEAD_BYTES), None),
    ("mp3 sync, then no second frame", b"\xff\xfb\x90\x64" + os.urandom(1000), None),
    ("mp3 sync, invalid bitrate", b"\xff\xfb\xf0\x64" + bytes(1000), None),
    ("adts sync, then no second frame", samples.adts_aac(1) + b"\x7fELF" + bytes(100), None),
    ("adts sync, frame length < 7", b"\xff\xf1\x50\x80\x00\x1f\xfc" + bytes(100), None),
]


@pytest.mark.parametrize(
    ("head", "expected"), [c[1:] for c in SNIFFED], ids=[c[0] for c in SNIFFED]
)
def test_sniff(head: bytes, expected: str | None) -> None:
    assert sniff(head) == expected


@pytest.mark.parametrize("head", [c[1] for c in SNIFFED], ids=[c[0] for c in SNIFFED])
def test_sniff_reads_only_the_first_head_bytes(head: bytes) -> None:
    data = head + os.urandom(2 * HEAD_BYTES)
    assert sniff(data) == sniff(data[:HEAD_BYTES])


def test_sniff_works_with_a_head_shorter_than_head_bytes() -> None:
    assert sniff(samples.wav()[:44]) == "audio/wav"
    assert sniff(b"%PDF-1.4\n") == "application/pdf"
    assert sniff(samples.mp3(id3=False)[:4]) == "audio/mpeg"  # next frame out of sight


def test_every_preset_type_is_something_sniff_can_answer() -> None:
    answers = {expected for _, _, expected in SNIFFED}
    for name, types in PRESETS.items():
        assert types <= answers, name


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("audio/x-wav", "audio/wav"),
        ("Audio/WAVE; codecs=1", "audio/wav"),
        ("audio/x-flac", "audio/flac"),
        ("audio/mp3", "audio/mpeg"),
        ("audio/x-m4a", "audio/mp4"),
        ("audio/opus", "audio/ogg"),
        ("application/x-zip-compressed", "application/zip"),
        (" image/png ", "image/png"),
    ],
)
def test_normalise(given: str, expected: str) -> None:
    assert normalise(given) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ([], None),
        (["", " "], None),
        (["mrc"], frozenset({MRC})),
        (["audio"], PRESETS["audio"]),
        (["audio", "application/pdf"], PRESETS["audio"] | {"application/pdf"}),
        (["MRC", "audio/x-wav"], frozenset({MRC, "audio/wav"})),
    ],
)
def test_allowed_types(spec: list[str], expected: frozenset[str] | None) -> None:
    assert allowed_types(spec) == expected


def test_unknown_preset_is_refused_with_the_known_ones_named() -> None:
    with pytest.raises(ValueError, match=r"unknown content type preset 'video'.*audio, mrc"):
        allowed_types(["audio", "video"])


AUDIO = PRESETS["audio"]
ACCEPTED = [
    # allowed, sniffed, declared
    (None, None, None),
    (None, "application/zip", None),
    (None, "application/x-executable", "application/octet-stream"),
    (AUDIO, "audio/wav", None),
    (AUDIO, "audio/wav", "audio/x-wav"),
    (AUDIO, "audio/wav", "audio/wav; codecs=1"),
    (AUDIO, "audio/mp4", "audio/aac"),
    (AUDIO, "audio/mp4", "audio/x-m4a"),
    (AUDIO, "audio/ogg", "audio/opus"),
    (AUDIO, "audio/webm", "video/webm"),
    (AUDIO, "audio/mpeg", "audio/x-some-new-name"),
    (AUDIO, "audio/flac", ""),
    (frozenset({MRC}), MRC, "application/octet-stream"),
    (frozenset({MRC}), MRC, None),
    (frozenset({"application/zip"}), "application/zip", "application/vnd.oasis.opendocument.text"),
]
REFUSED = [
    (AUDIO, None, None, "could not be recognised"),
    (AUDIO, "application/zip", "audio/wav", "application/zip, which this server does not accept"),
    (AUDIO, "video/webm", None, "video/webm"),
    (frozenset({MRC}), "audio/wav", None, "audio/wav"),
    (
        None,
        "application/zip",
        "audio/wav",
        "declared as audio/wav but its bytes are application/zip",
    ),
    (None, "application/x-executable", "audio/x-wav", "application/x-executable"),
    (AUDIO, "audio/mpeg", "audio/wav", "declared as audio/wav but its bytes are audio/mpeg"),
    (None, "application/pdf", "text/plain", "declared as text/plain"),
    (None, "audio/wav", "application/x-mrc", "declared as application/x-mrc"),
]


@pytest.mark.parametrize(("allowed", "sniffed", "declared"), ACCEPTED)
def test_policy_accepts(
    allowed: frozenset[str] | None, sniffed: str | None, declared: str | None
) -> None:
    ContentPolicy(allowed).check(sniffed, declared)


@pytest.mark.parametrize(("allowed", "sniffed", "declared", "message"), REFUSED)
def test_policy_refuses(
    allowed: frozenset[str] | None, sniffed: str | None, declared: str | None, message: str
) -> None:
    with pytest.raises(UnsupportedMediaType, match=message) as caught:
        ContentPolicy(allowed).check(sniffed, declared)
    error = caught.value
    assert error.status == 415
    assert error.code == "UNSUPPORTED_MEDIA_TYPE"
    assert error.details is not None and error.details["sniffed"] == sniffed


def test_policy_on_sniffed_samples() -> None:
    policy = ContentPolicy(allowed_types(["audio"]))
    policy.check(sniff(samples.wav()), "audio/x-wav")
    with pytest.raises(UnsupportedMediaType) as caught:
        policy.check(sniff(samples.elf()), "audio/wav")
    assert caught.value.to_dict()["details"] == {
        "sniffed": "application/x-executable",
        "declared": "audio/wav",
        "allowed": sorted(PRESETS["audio"]),
    }
