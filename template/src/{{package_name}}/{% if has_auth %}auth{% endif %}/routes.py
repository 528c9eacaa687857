"""`GET /api/v1/auth/me`: who the credentials of a request belong to."""

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from .identity import IDENTITY_RESPONSES, Identity, require_identity

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], responses=IDENTITY_RESPONSES)


class IdentityRead(BaseModel):
    subject: str
    scheme: str
    roles: list[str]


@router.get("/me")
async def me(identity: Annotated[Identity, Depends(require_identity)]) -> IdentityRead:
    """Who the credentials of this request belong to."""
    return IdentityRead(
        subject=identity.subject, scheme=identity.scheme, roles=sorted(identity.roles)
    )
