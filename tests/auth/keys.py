"""Key material and token minting for tests (keys are made fresh per run)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

SECRET = "test-secret-that-is-long-enough-for-hs256!"


def rsa_keys() -> tuple[Any, bytes]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def ec_keys() -> tuple[Any, bytes]:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def write_jwks(path: Path, kid: str, public_pem: bytes) -> Path:
    key = jwt.algorithms.RSAAlgorithm.to_jwk(
        serialization.load_pem_public_key(public_pem), as_dict=True
    )
    key["kid"] = kid
    path.write_text(json.dumps({"keys": [key]}))
    return path


def token(
    sub: str = "alice",
    *,
    key: Any = SECRET,
    algorithm: str = "HS256",
    scope: str = "upload",
    ttl: float = 600,
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    now = time.time()
    payload = {"sub": sub, "scope": scope, "iat": int(now), "exp": int(now + ttl), **claims}
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}
