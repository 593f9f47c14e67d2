"""Bearer tokens: JWTs verified with PyJWT.

One key kind per server, never a mix: an HS256 shared secret, or RS256/ES256 public keys (a PEM
file or a JWKS file). Pinning the algorithm family to the key kind is what defeats ``alg: none``
and HS/RS confusion (an attacker signing HS256 with the public key as the secret). ``exp`` is
required; ``nbf``, ``iss`` and ``aud`` are checked when configured. ``sub`` is the owner; with a
tenant claim configured, owners are ``<tenant>/<sub>``. Scopes come from ``scope`` (a
space-separated string) or ``scp`` / ``scopes`` (lists).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt

from chunkd.auth.identity import Identity
from chunkd.exceptions import Unauthorized

_ASYMMETRIC = ["RS256", "ES256"]


class TokenVerifier:
    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key_file: Path | None = None,
        jwks_file: Path | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        tenant_claim: str | None = None,
        leeway: float = 30.0,
    ) -> None:
        if sum(x is not None for x in (secret, public_key_file, jwks_file)) != 1:
            raise ValueError("configure exactly one of a JWT secret, public key file, JWKS file")
        self._issuer = issuer
        self._audience = audience
        self._tenant_claim = tenant_claim
        self._leeway = leeway
        self._key: Any = None
        self._jwks: dict[str, jwt.PyJWK] = {}
        if secret is not None:
            if len(secret) < 32:
                raise ValueError("the JWT secret must be at least 32 characters")
            self._key = secret
            self._algorithms = ["HS256"]
        elif public_key_file is not None:
            self._key = public_key_file.read_text()
            self._algorithms = _ASYMMETRIC
        else:
            assert jwks_file is not None
            keys = jwt.PyJWKSet.from_dict(json.loads(jwks_file.read_text()))
            self._jwks = {key.key_id or "": key for key in keys.keys}
            self._algorithms = _ASYMMETRIC

    def _key_for(self, token: str) -> Any:
        if not self._jwks:
            return self._key
        kid = jwt.get_unverified_header(token).get("kid") or ""
        key = self._jwks.get(kid)
        if key is None and not kid and len(self._jwks) == 1:
            key = next(iter(self._jwks.values()))  # a single key needs no kid
        if key is None:
            raise Unauthorized("the token's key id is unknown")
        return key

    def verify(self, token: str) -> Identity:
        try:
            key = self._key_for(token)
            claims: Mapping[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": self._audience is not None,
                    "verify_iss": self._issuer is not None,
                },
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("the token is from another issuer") from None
        except jwt.MissingRequiredClaimError as error:
            raise Unauthorized(f"the token lacks the {error.claim!r} claim") from None
        except jwt.InvalidAlgorithmError:
            raise Unauthorized("the token's algorithm is not accepted") from None
        except jwt.PyJWTError:
            raise Unauthorized("the token is not valid") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 256:
            raise Unauthorized("the token has no usable subject")
        owner = subject
        if self._tenant_claim is not None:
            tenant = claims.get(self._tenant_claim)
            if not isinstance(tenant, str) or not tenant:
                raise Unauthorized(f"the token has no {self._tenant_claim} claim")
            owner = f"{tenant}/{subject}"
        return Identity(owner=owner, scopes=_scopes(claims), via="token")


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    scope = claims.get("scope")
    if isinstance(scope, str) and scope.strip():
        return frozenset(scope.split())
    for name in ("scp", "scopes"):
        values = claims.get(name)
        if isinstance(values, list):
            return frozenset(str(value) for value in values)
    return frozenset()
