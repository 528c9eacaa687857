"""Gzip for large responses, for the clients that ask for it.

Starlette's middleware wraps every response; this one steps aside at once when the request
does not accept gzip, which is most API traffic.
"""

from collections.abc import Awaitable

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send


class GZipWhenAcceptedMiddleware:
    def __init__(self, app: ASGIApp, minimum_size: int) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function: without gzip the request goes on to the app's own awaitable,
        # with no coroutine of this layer's in between.
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"accept-encoding" and b"gzip" in value:
                    return self.gzip(scope, receive, send)
        return self.app(scope, receive, send)
