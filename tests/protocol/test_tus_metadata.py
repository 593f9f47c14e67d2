from __future__ import annotations

import pytest

from chunkd.exceptions import InvalidMetadata
from chunkd.protocol.tus.metadata import format_metadata, parse_metadata


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {}),
        ("", {}),
        (
            "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==",
            {"filename": "world_domination_plan.pdf"},
        ),
        ("is_confidential", {"is_confidential": None}),
        (
            "filename aGVsbG8=,is_confidential, type dGV4dA==",
            {"filename": "hello", "is_confidential": None, "type": "text"},
        ),
        ("name w6nDqMOg", {"name": "éèà"}),
        ("empty ", {"empty": ""}),
    ],
)
def test_parses(value: str | None, expected: dict[str, str | None]) -> None:
    assert parse_metadata(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "filename aGVsbG8=,filename d29ybGQ=",  # duplicate key
        "filename not*base64",
        "filename aGVsbG8",  # missing padding
        "filename aGVs bG8=",  # three parts
        "file,name aGVsbG8=,",  # empty pair
        ",",
        "ключ aGVsbG8=",  # non-ASCII key
        "bad /w==",  # not UTF-8
        "k " + "A" * 20000,
    ],
)
def test_refuses(value: str) -> None:
    with pytest.raises(InvalidMetadata):
        parse_metadata(value)


def test_round_trip() -> None:
    metadata: dict[str, str | None] = {"filename": "a b,c.wav", "flag": None, "n": "é"}
    assert parse_metadata(format_metadata(metadata)) == metadata
