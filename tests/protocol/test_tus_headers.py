from __future__ import annotations

import pytest

from chunkd.exceptions import InvalidConcatenation, InvalidHeader, VersionUnsupported
from chunkd.protocol.tus.headers import (
    Concat,
    format_expires,
    is_valid_upload_id,
    parse_concat,
    parse_defer_length,
    parse_non_negative_int,
    require_tus_resumable,
)

UPLOAD_ID = "0123456789abcdef0123456789abcdef"
OTHER_ID = "fedcba9876543210fedcba9876543210"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", 0),
        ("1", 1),
        ("100", 100),
        ("9223372036854775807", 2**63 - 1),
    ],
)
def test_non_negative_int_accepts(value: str | None, expected: int | None) -> None:
    assert parse_non_negative_int("Upload-Length", value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "0100",
        "00",
        "-0",
        "-1",
        "+0",
        "+5",
        "1.3",
        "1e3",
        "NaN",
        "Infinity",
        "0x10",
        " 5",
        "5 ",
        "5,6",
        "٣",  # a non-ASCII digit int() would accept
        "9223372036854775808",
        "123456789012345678901234567890",
    ],
)
def test_non_negative_int_refuses(value: str) -> None:
    with pytest.raises(InvalidHeader):
        parse_non_negative_int("Upload-Length", value)


def test_tus_resumable_must_be_1_0_0() -> None:
    require_tus_resumable("1.0.0")
    for value in (None, "", "1.0", "0.2.2", "1.0.0 ", "2.0.0"):
        with pytest.raises(VersionUnsupported):
            require_tus_resumable(value)


def test_defer_length_allows_only_1() -> None:
    assert parse_defer_length(None) is False
    assert parse_defer_length("1") is True
    for value in ("0", "true", "", "01", " 1"):
        with pytest.raises(InvalidHeader):
            parse_defer_length(value)


def test_concat_partial_and_final() -> None:
    assert parse_concat(None, "/files/") is None
    assert parse_concat("partial", "/files/") == Concat(partial=True)
    final = parse_concat(f"final;http://host/files/{UPLOAD_ID} /files/{OTHER_ID}", "/files/")
    assert final == Concat(partial=False, parts=(UPLOAD_ID, OTHER_ID))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "partial;",
        "final",
        "final;",
        "final; ",
        f"final;/other/{UPLOAD_ID}",
        "final;/files/../etc/passwd",
        "final;/files/%2e%2e",
        f"final;/files/{UPLOAD_ID}/x",
        "final;/files/ABC",
        "whatever",
    ],
)
def test_concat_refuses(value: str) -> None:
    with pytest.raises(InvalidConcatenation):
        parse_concat(value, "/files/")


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (UPLOAD_ID, True),
        (UPLOAD_ID.upper(), False),
        (UPLOAD_ID[:-1], False),
        (UPLOAD_ID + "0", False),
        ("..", False),
        ("%2e%2e", False),
        ("a/b", False),
        ("", False),
    ],
)
def test_upload_ids(value: str, valid: bool) -> None:
    assert is_valid_upload_id(value) is valid


def test_expires_is_an_http_date() -> None:
    assert format_expires(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
