"""Request body limit, enforced before the app runs and while the body streams in.

A declared `Content-Length` over the limit is refused at once; a chunked body without one is
counted as it arrives and refused as soon as it crosses the limit, before it is all read.
"""

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else -1
                if declared < 0:
                    await send_problem(send, 400, "Content-Length is not a number")
                elif declared > self.max_body_bytes:
                    await send_problem(send, 413, BodyTooLargeError(self.max_body_bytes).detail)
                else:
                    # The server delivers exactly Content-Length bytes: nothing left to count.
                    await self.app(scope, receive, send)
                return
            if name == b"transfer-encoding":
                chunked = True
        await self.app(scope, self._counted(receive) if chunked else receive, send)

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
