"""Minting signed URLs over the API, for a client that holds a token to hand to one that doesn't."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from chunkd.auth.signing import with_signature
from chunkd.exceptions import Forbidden
from chunkd.server.auth import Authenticator
from chunkd.server.rest.errors import ERROR_RESPONSES
from chunkd.server.urls import absolute_url
from chunkd.uploads.service import UploadService

MAX_TTL = 7 * 24 * 3600


class SignUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires_in: int = Field(3600, ge=1, le=MAX_TTL, description="Seconds the URL stays valid.")


class SignCreation(SignUpload):
    max_size: int = Field(ge=0, le=2**63 - 1, description="Largest upload the URL may create.")


class SignedUpload(BaseModel):
    tus: str = Field(description="The upload's tus URL (HEAD, PATCH, DELETE, GET).")
    rest: str = Field(description="The upload's REST URL (status, parts, complete, abort).")
    expires_at: float


class SignedCreation(BaseModel):
    tus: str = Field(description="POST here (tus creation) to create one upload.")
    rest: str = Field(description="POST here (REST session) to create one upload.")
    expires_at: float


def build_signing_router(base_path: str, files_path: str, behind_proxy: bool) -> APIRouter:
    router = APIRouter(prefix=base_path, tags=["signed urls"], responses=ERROR_RESPONSES)

    def parts(request: Request) -> tuple[Authenticator, UploadService]:
        return request.app.state.auth, request.app.state.service

    @router.post("/uploads/{upload_id}/signed-url", response_model=SignedUpload, status_code=201)
    async def sign_upload(request: Request, upload_id: str, body: SignUpload) -> SignedUpload:
        """A URL that lets a token-less client continue this upload, until it expires."""
        auth, service = parts(request)
        identity = await auth.identify(request, upload_id=upload_id)
        if identity.via == "signature" or auth.signer is None:
            raise Forbidden("signed URLs are minted with a token, on a server with a signing key")
        upload = await service.get(upload_id, owner=identity.owner)
        expires_at = time.time() + body.expires_in
        token = auth.signer.for_upload(upload.id, upload.owner, expires_at)
        return SignedUpload(
            tus=with_signature(
                absolute_url(request, f"{files_path}{upload.id}", behind_proxy), token
            ),
            rest=with_signature(
                absolute_url(request, f"{base_path}/uploads/{upload.id}", behind_proxy), token
            ),
            expires_at=expires_at,
        )

    @router.post("/signed-urls", response_model=SignedCreation, status_code=201)
    async def sign_creation(request: Request, body: SignCreation) -> SignedCreation:
        """A single-use URL that lets a token-less client create one upload of at most
        ``max_size`` bytes, owned by the caller."""
        auth, _ = parts(request)
        identity = await auth.identify(request)
        if identity.via == "signature" or auth.signer is None:
            raise Forbidden("signed URLs are minted with a token, on a server with a signing key")
        expires_at = time.time() + body.expires_in
        token = auth.signer.for_creation(identity.owner, body.max_size, expires_at)
        return SignedCreation(
            tus=with_signature(absolute_url(request, files_path, behind_proxy), token),
            rest=with_signature(absolute_url(request, f"{base_path}/uploads", behind_proxy), token),
            expires_at=expires_at,
        )

    return router
