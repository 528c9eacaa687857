"""Request context: request id, access log, security headers and the last-resort error handler.

One pure ASGI layer does all four so that a request pays for a single `send` wrapper. It is
the outermost layer: every response, error responses included, carries `X-Request-ID` and
the security headers, and every request produces exactly one access-log line.
"""

import re
from random import getrandbits
from time import perf_counter
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..log import AccessLog, request_id
from ..problems import send_problem

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_UNHANDLED_DETAIL = "An unexpected error occurred; quote the request id when reporting it"

API_CSP = b"default-src 'none'; frame-ancestors 'none'"


def security_headers(*, hsts: bool) -> list[tuple[bytes, bytes]]:
    """Headers for an API; a response that sets one of them itself keeps its own value.

    No X-Frame-Options: `frame-ancestors 'none'` supersedes it, and every header costs time
    on each response.
    """
    headers = [
        (b"content-security-policy", API_CSP),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-resource-policy", b"same-origin"),
        (b"cache-control", b"no-store"),
    ]
    if hsts:
        headers.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
    return headers


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, headers: list[tuple[bytes, bytes]], access_log: AccessLog
    ) -> None:
        self.app = app
        self.headers = headers
        self.header_names = frozenset(name for name, _ in headers)
        self.access_log = access_log
        self.logger = structlog.get_logger(__name__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        current = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if _REQUEST_ID.fullmatch(value):
                    current = value.decode("ascii")
                break
        if not current:
            # Unique, not secret: no need for the system's random source on every request.
            current = f"{getrandbits(128):032x}"
        token = request_id.set(current)

        started = perf_counter()
        status = 0
        extra = [(b"x-request-id", current.encode("ascii")), *self.headers]

        async def send_with_context(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                for name, _ in headers:
                    if name in self.header_names:  # the response chose its own value
                        own = {name for name, _ in headers}
                        headers.extend(item for item in extra if item[0] not in own)
                        break
                else:
                    headers.extend(extra)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        except Exception:
            self.logger.exception("unhandled_exception", method=scope["method"], path=scope["path"])
            if not status:
                await send_problem(send_with_context, 500, _UNHANDLED_DETAIL)
        finally:
            route: Any = scope.get("route")
            client = scope.get("client")
            self.access_log.request(
                method=scope["method"],
                path=scope["path"],
                route=getattr(route, "path", None),
                status=status or 500,
                duration_ms=round((perf_counter() - started) * 1000, 3),
                client=client[0] if client else None,
            )
            request_id.reset(token)
