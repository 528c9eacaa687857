"""The outcome of checking credentials: an identity, or the reason they were refused."""

from dataclasses import dataclass

from fastapi import status


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str
    scheme: str
    roles: frozenset[str]


class AuthenticationError(Exception):
    """Credentials were presented and refused; `reason` is logged, `detail` is answered."""

    def __init__(
        self,
        scheme: str,
        reason: str,
        detail: str = "The credentials are invalid or expired",
        status_code: int = status.HTTP_401_UNAUTHORIZED,
    ) -> None:
        super().__init__(reason)
        self.scheme = scheme
        self.reason = reason
        self.detail = detail
        self.status_code = status_code
