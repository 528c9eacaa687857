"""Request body limit, enforced before the app runs and while the body streams in.

A declared `Content-Length` over the limit is refused at once; a chunked body without one is
counted as it arrives and refused as soon as it crosses the limit, before it is all read.
"""

from collections.abc import Awaitable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..problems import send_problem


class BodyTooLargeError(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than the limit of {limit} bytes")


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function: a request within the limit goes on to the app's own awaitable,
        # with no coroutine of this layer's in between.
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else -1
                if declared < 0:
                    return send_problem(send, 400, "Content-Length is not a number")
                if declared > self.max_body_bytes:
                    return send_problem(send, 413, BodyTooLargeError(self.max_body_bytes).detail)
                # The server delivers exactly Content-Length bytes: nothing left to count.
                return self.app(scope, receive, send)
            if name == b"transfer-encoding":
                chunked = True
        if chunked:
            return self.app(scope, self._counted(receive), send)
        return self.app(scope, receive, send)

    def _counted(self, receive: Receive) -> Receive:
        limit = self.max_body_bytes
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        return receive_limited
