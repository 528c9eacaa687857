"""Quotas, and the state of a caller's window after a hit as the store answers it."""

from dataclasses import dataclass
from math import ceil

from limits import RateLimitItem


class Quota:
    """A named limit with its `RateLimit-Policy` header."""

    def __init__(self, name: str, limit: RateLimitItem) -> None:
        self.name = name
        self.limit = limit
        self.policy = f'"{name}";q={limit.amount};w={limit.get_expiry()}'


@dataclass(frozen=True, slots=True)
class Window:
    """The state of one caller's window right after a hit."""

    admitted: bool
    remaining: int
    reset_after: float  # seconds until the window admits one more request

    def headers(self, quota: Quota) -> dict[str, str]:
        """The `RateLimit-Policy` and `RateLimit` headers of an admitted request."""
        return {
            "RateLimit-Policy": quota.policy,
            "RateLimit": f'"{quota.name}";r={self.remaining};t={ceil(self.reset_after)}',
        }
