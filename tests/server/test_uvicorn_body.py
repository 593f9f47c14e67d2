"""uvicorn's body buffer replaced by the parser's chunks: same bytes, fewer copies."""

from __future__ import annotations

from chunkd.server.uvicorn_body import BodyChunks


def test_an_empty_body_is_empty_bytes() -> None:
    body = BodyChunks()
    assert len(body) == 0
    assert not body
    assert bytes(body) == b""


def test_one_chunk_is_handed_over_as_it_is() -> None:
    chunk = bytes(range(256)) * 256
    body = BodyChunks()
    body += chunk
    assert len(body) == len(chunk)
    assert body
    assert bytes(body) is chunk  # no copy


def test_several_chunks_are_joined_in_order() -> None:
    body = BodyChunks()
    for part in (b"abc", b"", b"defg", b"h" * 70_000):
        body += part
    assert len(body) == 7 + 70_000
    assert bytes(body) == b"abcdefg" + b"h" * 70_000
