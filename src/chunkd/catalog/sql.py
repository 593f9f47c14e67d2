"""What the SQL catalogs (SQLite, PostgreSQL) share: statements whose only difference is how a
parameter is written (``?`` or ``$n``), and reading their rows back."""

from __future__ import annotations

from typing import Any, Literal

from chunkd.catalog.base import Activity
from chunkd.uploads.models import UploadState


class Params:
    """Collects a statement's parameters; calling it with a value returns its placeholder."""

    def __init__(self, style: Literal["qmark", "numeric"]) -> None:
        self.style = style
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return "?" if self.style == "qmark" else f"${len(self.values)}"


def upload_filters(
    params: Params,
    *,
    owner: str | None,
    states: frozenset[UploadState] | None,
    updated_before: float | None,
    after: str | None,
) -> str:
    """The WHERE clause of ``Catalog.list_uploads``: every given filter must hold."""
    conditions = ["1 = 1"]
    if owner is not None:
        conditions.append(f'"owner" = {params(owner)}')
    if states:
        marks = ", ".join(params(state) for state in sorted(str(state) for state in states))
        conditions.append(f'"state" IN ({marks})')
    if updated_before is not None:
        conditions.append(f'"updated_at" < {params(updated_before)}')
    if after is not None:
        conditions.append(f'"id" > {params(after)}')
    return " AND ".join(conditions)


def activity_query(since: str) -> str:
    """``Catalog.activity``'s one-row aggregate; ``since`` is the placeholder of the moment."""
    return f"""
SELECT
    COUNT(*) FILTER (WHERE "created_at" >= {since}),
    COUNT(*) FILTER (WHERE "state" = 'complete'),
    COUNT(*) FILTER (WHERE "state" = 'failed'),
    COUNT(*) FILTER (WHERE "state" = 'aborted'),
    COUNT(*) FILTER (WHERE "state" = 'expired'),
    COALESCE(SUM(COALESCE("length", "offset")) FILTER (WHERE "state" = 'complete'), 0),
    COALESCE(SUM("updated_at" - "created_at") FILTER (WHERE "state" = 'complete'), 0)
FROM uploads WHERE "updated_at" >= {since}
"""


def activity_of(row: Any) -> Activity:
    """The ``activity_query`` row (sqlite3.Row or asyncpg.Record: indexed by position)."""
    return Activity(
        started=int(row[0]),
        completed=int(row[1]),
        failed=int(row[2]),
        aborted=int(row[3]),
        expired=int(row[4]),
        completed_bytes=int(row[5]),
        completed_seconds=float(row[6]),
    )
