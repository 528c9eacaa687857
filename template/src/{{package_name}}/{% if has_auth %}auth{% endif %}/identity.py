"""Who is calling: the identity behind a request's credentials, and the dependencies that
demand one.

`optional_identity` (of `scheme`, the credentials this service reads) never refuses a request:
it returns None for missing or refused credentials and keeps the reason on
`request.state.auth_failure`. `require_identity` turns that into 401 with the scheme's
challenge, or into the status the refusal names; `require_role` turns a missing role into 403.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import Depends, HTTPException, Request, status

from ..problems import problem_responses
from .credentials import AuthenticationError, Identity
from .scheme import CHALLENGE, REFUSALS, optional_identity

__all__ = [
    "IDENTITY_RESPONSES",
    "Identity",
    "optional_identity",
    "require_identity",
    "require_role",
    "unauthorized",
]

# The OpenAPI answers of a route behind `require_identity`.
IDENTITY_RESPONSES = problem_responses(*REFUSALS)

logger = structlog.get_logger(__name__)


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": CHALLENGE}
    )


async def require_identity(
    request: Request, identity: Annotated[Identity | None, Depends(optional_identity)]
) -> Identity:
    """The caller's identity, or 401 problem+json with a `WWW-Authenticate` challenge."""
    if identity is not None:
        return identity
    failure: AuthenticationError | None = getattr(request.state, "auth_failure", None)
    if failure is None:
        raise unauthorized("Authentication is required")
    if failure.status_code != status.HTTP_401_UNAUTHORIZED:
        raise HTTPException(failure.status_code, failure.detail)
    raise unauthorized(failure.detail)


def require_role(*roles: str) -> Callable[..., Awaitable[Identity]]:
    """A dependency that lets through identities with one of `roles`, others get 403."""
    allowed = frozenset(roles)
    needed = " or ".join(sorted(allowed))

    async def check_role(identity: Annotated[Identity, Depends(require_identity)]) -> Identity:
        if identity.roles & allowed:
            return identity
        logger.warning("auth.forbidden", scheme=identity.scheme, subject=identity.subject)
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"This needs the role {needed}",
            headers={"WWW-Authenticate": CHALLENGE},
        )

    return check_role
