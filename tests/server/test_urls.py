from __future__ import annotations

import pytest

from chunkd.server.urls import public_origin


@pytest.mark.parametrize(
    ("scheme", "headers", "behind_proxy", "expected"),
    [
        ("http", {"host": "a.example:8080"}, False, "http://a.example:8080"),
        ("http", {"host": "a.example:80"}, False, "http://a.example"),
        ("https", {"host": "a.example:443"}, False, "https://a.example"),
        ("http", {"host": "[::1]:8080"}, False, "http://[::1]:8080"),
        ("http", {}, False, "http://127.0.0.1:8080"),
        ("http", {"host": "bad host"}, False, "http://127.0.0.1:8080"),
        ("http", {"host": "a", "x-forwarded-host": "b.example"}, False, "http://a"),
        ("http", {"host": "a", "x-forwarded-host": "b.example"}, True, "http://b.example"),
        (
            "http",
            {"host": "a", "x-forwarded-host": "b.example, c", "x-forwarded-proto": "https"},
            True,
            "https://b.example",
        ),
        ("http", {"host": "a", "x-forwarded-proto": "gopher"}, True, "http://a"),
        (
            "http",
            {"host": "a", "forwarded": "proto=https;host=f.example:8443"},
            True,
            "https://f.example:8443",
        ),
        ("http", {"host": "a", "x-forwarded-host": "x/y"}, True, "http://a"),
    ],
)
def test_public_origin(
    scheme: str, headers: dict[str, str], behind_proxy: bool, expected: str
) -> None:
    origin = public_origin(scheme, headers, ("127.0.0.1", 8080), behind_proxy=behind_proxy)
    assert origin == expected
