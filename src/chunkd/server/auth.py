"""Who is asking, checked on every upload request: bearer token, signed URL, or anonymous.

The tus and REST adapters call :meth:`Authenticator.identify` first thing; it also applies the
request-rate limits (per owner and per client address) with the ``limits`` library, so a
refused request costs nothing below this line.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.requests import HTTPConnection

from chunkd.auth.identity import ANONYMOUS, UPLOAD, Identity
from chunkd.auth.signing import PARAMETER, UrlSigner, with_signature
from chunkd.catalog.base import Catalog
from chunkd.exceptions import (
    InsufficientScope,
    LengthRequired,
    RateLimited,
    Unauthorized,
    UploadTooLarge,
)
from chunkd.settings import Settings

if TYPE_CHECKING:
    from chunkd.auth.tokens import TokenVerifier


class Authenticator:
    def __init__(
        self,
        tokens: TokenVerifier | None,
        signer: UrlSigner | None,
        *,
        rate_per_owner: list[RateLimitItem],
        rate_per_address: list[RateLimitItem],
        behind_proxy: bool = False,
        signed_url_ttl: float = 24 * 3600.0,
    ) -> None:
        self.tokens = tokens
        self.signed_url_ttl = signed_url_ttl
        self.signer = signer
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_owner = rate_per_owner
        self._per_address = rate_per_address
        self._behind_proxy = behind_proxy

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        tokens = None
        if settings.auth_enabled:
            # imported only when tokens are in use: PyJWT loads cryptography (~9 MiB)
            from chunkd.auth.tokens import TokenVerifier

            tokens = TokenVerifier(
                secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
                public_key_file=settings.jwt_public_key,
                jwks_file=settings.jwks_file,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                tenant_claim=settings.jwt_tenant_claim,
            )
        secret = settings.url_signing_secret or settings.jwt_secret
        signer = UrlSigner(secret.get_secret_value()) if secret is not None else None
        return cls(
            tokens,
            signer,
            rate_per_owner=_rates(settings.rate_limit),
            rate_per_address=_rates(settings.rate_limit_per_address),
            behind_proxy=settings.behind_proxy,
            signed_url_ttl=settings.signed_url_ttl,
        )

    @property
    def anonymous(self) -> bool:
        return self.tokens is None

    async def identify(
        self, request: HTTPConnection, *, upload_id: str | None = None, scope: str = UPLOAD
    ) -> Identity:
        """The caller's identity for this request, or ``Unauthorized`` / ``RateLimited``.

        ``upload_id`` is the upload the request names (``None`` for creating one); a signed
        URL must grant exactly that.
        """
        await self._limit(f"address:{self._address(request)}", self._per_address)
        identity = self._resolve(request, upload_id)
        if not identity.can(scope):
            raise InsufficientScope(f"this route needs the {scope!r} scope")
        await self._limit(f"owner:{identity.owner}", self._per_owner)
        return identity

    async def admit_creation(
        self, identity: Identity, length: int | None, catalog: Catalog
    ) -> None:
        """A signed creation URL creates one upload, of known length, within its byte limit."""
        if identity.max_bytes is None:
            return
        if length is None:
            raise LengthRequired("a signed creation URL needs the upload's length up front")
        if length > identity.max_bytes:
            raise UploadTooLarge(f"this signed URL allows at most {identity.max_bytes} bytes")
        assert identity.nonce is not None and identity.expires_at is not None
        if not await catalog.claim_nonce(identity.nonce, identity.expires_at):
            raise Unauthorized("this signed URL was already used")

    def location(self, identity: Identity, url: str, upload_id: str) -> str:
        """Where the client continues: a client without a token gets a URL signed for it."""
        if identity.via != "signature" or self.signer is None:
            return url
        token = self.signer.for_upload(upload_id, identity.owner, time.time() + self.signed_url_ttl)
        return with_signature(url, token)

    def _resolve(self, request: HTTPConnection, upload_id: str | None) -> Identity:
        authorization = request.headers.get("authorization")
        signature = request.query_params.get(PARAMETER)
        if authorization is not None:
            kind, _, token = authorization.partition(" ")
            if kind.lower() != "bearer" or not token.strip():
                raise Unauthorized("Authorization must be 'Bearer <token>'")
            if self.tokens is None:
                raise Unauthorized("this server does not accept tokens")
            return self.tokens.verify(token.strip())
        if signature is not None:
            if self.signer is None:
                raise Unauthorized("this server does not accept signed URLs")
            return self.signer.verify(signature, upload_id=upload_id, now=time.time())
        if self.tokens is None:
            return ANONYMOUS
        raise Unauthorized("authentication required")

    def _address(self, request: HTTPConnection) -> str:
        if self._behind_proxy:
            forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
            if forwarded:
                return forwarded
        return request.client.host if request.client else "unknown"

    async def _limit(self, key: str, items: list[RateLimitItem]) -> None:
        for item in items:
            if not await self._limiter.hit(item, key):
                stats = await self._limiter.get_window_stats(item, key)
                raise RateLimited(
                    f"more than {item} requests",
                    retry_after=int(stats.reset_time - time.time()) + 1,
                )


def _rates(value: str) -> list[RateLimitItem]:
    return [] if value in ("", "0") else list(parse_many(value))
