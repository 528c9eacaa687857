"""uvicorn's httptools protocol, with bounds on each request head (request line and headers).

uvicorn with httptools bounds neither the size of a request head nor its number of headers,
and gives a client all the time it wants to send them: one 20 MiB header, 200,000 headers
or a head sent a byte every few seconds would each hold memory or a connection. Here:

- a head over MAX_HEAD_BYTES, or with more than MAX_HEADERS headers, is answered 431 and the
  connection closed, before the parser has buffered more than one read of it;
- a head not complete MAX_HEAD_SECONDS after the connection opened (or after the previous
  request's response, on a kept-alive connection) is answered 408 and the connection closed;
  a connection that sent nothing at all is closed silently.

The body keeps its own bound (MAX_REQUEST_BODY_BYTES, in the app's middleware).
"""

import asyncio
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .problems import PROBLEM_CONTENT_TYPE, problem_body

MAX_HEAD_BYTES = 32 * 1024
MAX_HEADERS = 100
MAX_HEAD_SECONDS = 10.0


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading_head = False
        self.head_bytes = 0
        self.head_lines = 0
        self.head_timer: asyncio.TimerHandle | None = None

    def _start_head(self) -> None:
        self.reading_head = True
        self.head_bytes = 0
        self.head_lines = 0
        self.head_timer = self.loop.call_later(MAX_HEAD_SECONDS, self._head_timed_out)

    def _end_head(self) -> None:
        self.reading_head = False
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _refuse(self, status: HTTPStatus, detail: str) -> None:
        self._end_head()
        body = problem_body(status, detail)
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\n"
            f"content-type: {PROBLEM_CONTENT_TYPE}\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        if self.head_bytes == 0:
            self._end_head()
            self.transport.close()
            return
        self._refuse(
            HTTPStatus.REQUEST_TIMEOUT,
            f"The request line and headers took over {MAX_HEAD_SECONDS:g} seconds",
        )

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.reading_head:
            # Only the bytes up to the end of the head count; a body may follow in the same read.
            end = data.find(b"\r\n\r\n")
            size = len(data) if end < 0 else end + 4
            self.head_bytes += size
            self.head_lines += data.count(b"\n", 0, size)
            if self.head_bytes > MAX_HEAD_BYTES:
                detail = f"The request line and headers are over {MAX_HEAD_BYTES} bytes"
                self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, detail)
                return
            # The request line, one line per header, and the empty line that ends the head.
            if self.head_lines > MAX_HEADERS + 2:
                detail = f"The request has over {MAX_HEADERS} headers"
                self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, detail)
                return
        super().data_received(data)

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        # The next bytes on a kept-alive connection begin the next request's head (unless
        # that request already arrived with this one).
        if not pipelined and not self.reading_head and not self.transport.is_closing():
            self._start_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self.reading_head:
            self._start_head()

    def on_headers_complete(self) -> None:
        self._end_head()
        super().on_headers_complete()
