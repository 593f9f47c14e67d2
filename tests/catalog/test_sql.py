"""The SQL both catalogs share: the same filters, written with either placeholder style."""

from __future__ import annotations

from chunkd.catalog.sql import Params, upload_filters
from chunkd.uploads.models import UploadState

STATES = frozenset({UploadState.VERIFYING, UploadState.COMPLETE})


def test_filters_in_both_placeholder_styles() -> None:
    for style, marks in (("qmark", ["?"] * 5), ("numeric", ["$1", "$2", "$3", "$4", "$5"])):
        params = Params(style)  # type: ignore[arg-type]
        where = upload_filters(params, owner="ann", states=STATES, updated_before=5.0, after="b")
        assert where == (
            f'1 = 1 AND "owner" = {marks[0]} AND "state" IN ({marks[1]}, {marks[2]}) '
            f'AND "updated_at" < {marks[3]} AND "id" > {marks[4]}'
        )
        assert params.values == ["ann", "complete", "verifying", 5.0, "b"]


def test_no_filters_match_everything() -> None:
    params = Params("numeric")
    none = upload_filters(params, owner=None, states=None, updated_before=None, after=None)
    assert none == "1 = 1" and params.values == []
