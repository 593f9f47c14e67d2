from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest

from chunkd.auth.tokens import TokenVerifier
from chunkd.exceptions import Unauthorized
from tests.auth.keys import SECRET, ec_keys, rsa_keys, token, write_jwks


def test_hs256_token_gives_owner_and_scopes() -> None:
    identity = TokenVerifier(secret=SECRET).verify(token("alice", scope="upload admin"))
    assert identity.owner == "alice"
    assert identity.scopes == {"upload", "admin"}
    assert identity.via == "token"


def test_scope_lists_and_tenants() -> None:
    verifier = TokenVerifier(secret=SECRET, tenant_claim="org")
    identity = verifier.verify(token("bob", scope="", scp=["upload"], org="clinic-7"))
    assert identity.owner == "clinic-7/bob"
    assert identity.can("upload")
    with pytest.raises(Unauthorized):
        verifier.verify(token("bob"))  # no tenant claim


def unsigned(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


ISS = "https://idp.example"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (token(ttl=-120, aud="chunkd", iss=ISS), "expired"),
        (token(nbf=int(time.time()) + 600, aud="chunkd", iss=ISS), "not valid yet"),
        (token(key="another-secret-that-is-long-enough", aud="chunkd", iss=ISS), "not valid"),
        (token(aud="someone-else", iss=ISS), "audience"),
        (token(aud="chunkd", iss="https://evil.example"), "issuer"),
        (token(iss=ISS), "'aud' claim"),
        (unsigned({"sub": "alice", "exp": int(time.time()) + 600, "aud": "chunkd"}), "not"),
        ("not.a.token", "not valid"),
        ("", "not valid"),
        (token(sub="", aud="chunkd", iss=ISS), "subject"),
    ],
)
def test_bad_tokens(bad: str, message: str) -> None:
    verifier = TokenVerifier(secret=SECRET, audience="chunkd", issuer=ISS)
    with pytest.raises(Unauthorized) as error:
        verifier.verify(bad)
    assert message in error.value.message


def test_tokens_without_exp_are_refused() -> None:
    raw = jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        TokenVerifier(secret=SECRET).verify(raw)


def test_rs256_and_es256_public_keys(tmp_path: Path) -> None:
    for private, public in (rsa_keys(), ec_keys()):
        path = tmp_path / "key.pem"
        path.write_bytes(public)
        algorithm = "RS256" if b"BEGIN PUBLIC KEY" in public and len(public) > 300 else "ES256"
        verifier = TokenVerifier(public_key_file=path)
        assert verifier.verify(token(key=private, algorithm=algorithm)).owner == "alice"


def test_hs_rs_confusion_is_refused(tmp_path: Path) -> None:
    """An attacker signs HS256 with the server's *public* key as the HMAC secret."""
    _, public = rsa_keys()
    path = tmp_path / "key.pem"
    path.write_bytes(public)
    # PyJWT itself refuses to HMAC with a PEM key, so forge the token by hand
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(
        json.dumps({"sub": "mallory", "exp": int(time.time()) + 600}).encode()
    ).rstrip(b"=")
    signature = hmac.new(public, header + b"." + body, hashlib.sha256).digest()
    forged = (
        header + b"." + body + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")
    ).decode()
    with pytest.raises(Unauthorized):
        TokenVerifier(public_key_file=path).verify(forged)


def test_jwks_picks_the_key_by_kid(tmp_path: Path) -> None:
    private, public = rsa_keys()
    verifier = TokenVerifier(jwks_file=write_jwks(tmp_path / "jwks.json", "k1", public))
    good = token(key=private, algorithm="RS256", headers={"kid": "k1"})
    assert verifier.verify(good).owner == "alice"
    with pytest.raises(Unauthorized):
        verifier.verify(token(key=private, algorithm="RS256", headers={"kid": "k2"}))


def test_short_secrets_and_mixed_configuration_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        TokenVerifier(secret="short")
    with pytest.raises(ValueError):
        TokenVerifier(secret=SECRET, public_key_file=tmp_path / "k.pem")
