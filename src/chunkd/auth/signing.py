"""Signed upload URLs: HMAC-SHA256 capabilities for clients that hold no token.

A capability is one query parameter, ``sig=<payload>.<mac>``: the payload (base64url JSON)
names what it grants — one existing upload (``u``), or the creation of one upload of at most
``m`` bytes (with a single-use nonce ``n``) — for whom (``o``) and until when (``e``). The MAC
covers the payload, so a tampered, expired or re-targeted URL is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import quote

from chunkd.auth.identity import UPLOAD, Identity
from chunkd.exceptions import Unauthorized

PARAMETER = "sig"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UrlSigner:
    def __init__(self, secret: str) -> None:
        if len(secret) < 32:
            raise ValueError("the URL signing secret must be at least 32 characters")
        self._key = hashlib.sha256(b"chunkd signed url v1\0" + secret.encode()).digest()

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def _sign(self, claims: dict[str, object]) -> str:
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{payload}.{self._mac(payload)}"

    def for_upload(self, upload_id: str, owner: str | None, expires_at: float) -> str:
        return self._sign({"k": "upload", "u": upload_id, "o": owner, "e": int(expires_at)})

    def for_creation(self, owner: str | None, max_bytes: int, expires_at: float) -> str:
        nonce = secrets.token_hex(12)
        return self._sign(
            {"k": "create", "m": max_bytes, "o": owner, "e": int(expires_at), "n": nonce}
        )

    def verify(self, token: str, *, upload_id: str | None, now: float | None = None) -> Identity:
        """The identity a capability grants for ``upload_id`` (``None``: creating one)."""
        payload, _, mac = token.partition(".")
        if not payload or not mac or not hmac.compare_digest(mac, self._mac(payload)):
            raise Unauthorized("the signed URL is not valid")
        try:
            claims = json.loads(_unb64(payload))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise Unauthorized("the signed URL is not valid") from None
        if not isinstance(claims, dict) or not isinstance(claims.get("e"), int):
            raise Unauthorized("the signed URL is not valid")
        expires_at = float(claims["e"])
        if expires_at < (time.time() if now is None else now):
            raise Unauthorized("the signed URL has expired")
        owner = claims.get("o")
        if owner is not None and not isinstance(owner, str):
            raise Unauthorized("the signed URL is not valid")
        scopes = frozenset({UPLOAD})
        if claims.get("k") == "upload" and upload_id is not None and claims.get("u") == upload_id:
            return Identity(owner, scopes, "signature", upload_id=upload_id, expires_at=expires_at)
        max_bytes, nonce = claims.get("m"), claims.get("n")
        if (
            claims.get("k") == "create"
            and upload_id is None
            and isinstance(max_bytes, int)
            and isinstance(nonce, str)
        ):
            return Identity(
                owner, scopes, "signature", max_bytes=max_bytes, nonce=nonce, expires_at=expires_at
            )
        raise Unauthorized("the signed URL grants something else")


def with_signature(url: str, token: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{PARAMETER}={quote(token, safe='.')}"
