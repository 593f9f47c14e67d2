from __future__ import annotations

import pytest

from chunkd.auth.signing import UrlSigner, with_signature
from chunkd.exceptions import Unauthorized

SECRET = "url-signing-secret-that-is-long-enough!!"
UPLOAD = "a" * 32
OTHER = "b" * 32


def test_upload_capability() -> None:
    signer = UrlSigner(SECRET)
    token = signer.for_upload(UPLOAD, "alice", expires_at=2000)
    identity = signer.verify(token, upload_id=UPLOAD, now=1000)
    assert (identity.owner, identity.upload_id, identity.via) == ("alice", UPLOAD, "signature")
    assert identity.can("upload") and not identity.can("admin")


def test_creation_capability() -> None:
    signer = UrlSigner(SECRET)
    token = signer.for_creation("alice", 1000, expires_at=2000)
    identity = signer.verify(token, upload_id=None, now=1000)
    assert identity.max_bytes == 1000 and identity.nonce


def flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


def test_refusals() -> None:
    signer = UrlSigner(SECRET)
    token = signer.for_upload(UPLOAD, "alice", expires_at=2000)
    creation = signer.for_creation("alice", 10, expires_at=2000)
    cases = [
        (token, OTHER, 1000, "grants something else"),  # re-targeted
        (token, None, 1000, "grants something else"),  # used to create
        (creation, UPLOAD, 1000, "grants something else"),
        (token, UPLOAD, 3000, "expired"),
        (flip(token, 3), UPLOAD, 1000, "not valid"),  # tampered payload
        (flip(token, len(token) - 2), UPLOAD, 1000, "not valid"),  # tampered MAC
        (token.split(".")[0], UPLOAD, 1000, "not valid"),
        ("", UPLOAD, 1000, "not valid"),
        (UrlSigner("another-secret-that-is-long-enough-too").for_upload(UPLOAD, "a", 2000),
         UPLOAD, 1000, "not valid"),
    ]  # fmt: skip
    for value, target, now, message in cases:
        with pytest.raises(Unauthorized) as error:
            signer.verify(value, upload_id=target, now=now)
        assert message in error.value.message, value


def test_with_signature() -> None:
    assert with_signature("http://h/files/x", "p.m") == "http://h/files/x?sig=p.m"
    assert with_signature("http://h/u?a=1", "p.m") == "http://h/u?a=1&sig=p.m"
