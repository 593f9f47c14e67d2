"""How an ``Upload`` maps to a flat row of SQL-friendly values, for every SQL catalog."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chunkd.uploads.models import FIELDS, Upload, UploadState

_JSON_FIELDS = frozenset({"metadata", "concat_parts", "storage", "digests", "expected_digests"})
COLUMNS: tuple[str, ...] = FIELDS


def encode_value(name: str, value: Any) -> Any:
    if name in _JSON_FIELDS:
        if value is None:
            return None
        return json.dumps(list(value) if isinstance(value, tuple) else value, sort_keys=True)
    if name == "state":
        return str(value)
    if name == "partial":
        return bool(value)
    return value


def encode(changes: Mapping[str, Any]) -> dict[str, Any]:
    return {name: encode_value(name, value) for name, value in changes.items()}


def decode(row: Mapping[str, Any]) -> Upload:
    values: dict[str, Any] = {}
    for name in COLUMNS:
        value = row[name]
        if name in _JSON_FIELDS and value is not None:
            value = json.loads(value)
            if name == "concat_parts":
                value = tuple(value)
        elif name == "state":
            value = UploadState(value)
        elif name == "partial":
            value = bool(value)
        values[name] = value
    return Upload(**values)
