"""uvicorn's httptools protocol, with bounds on each request head (request line and headers).

uvicorn with httptools bounds neither the size of a request head nor its number of headers,
and gives a client all the time it wants to send them: one 20 MiB header, 200,000 headers
or a head sent a byte every few seconds would each hold memory or a connection. Here:

- a head over MAX_HEAD_BYTES, or with more than MAX_HEADERS headers, is answered 431 and the
  connection closed, before the parser has buffered more than one read of it;
- a head not complete MAX_HEAD_SECONDS after the connection opened (on a kept-alive
  connection: after its first byte) is answered 408 and the connection closed; a new
  connection that sent nothing at all is closed silently. Between two requests of a kept-alive
  connection, the idle time is uvicorn's keep-alive timeout (KEEP_ALIVE_TIMEOUT), which may be
  longer (behind a load balancer that keeps connections open for a minute, say).

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
    # The bounds cost GET /health/live about 7,100 instructions per request: 541,517 against
    # 534,371 with uvicorn's own protocol and 462,976 for bare FastAPI, 0.855 of it, over the
    # 0.85 guard (bench/instructions.py, 2026-12-01); waiting for a kept-alive connection's
    # next head to begin before its time runs adds about 640 (7,740 in process,
    # bench/http_protocol.py). Written the obvious way they cost
    # 22,000 (556,395, 0.83), hence three choices. Each head only notes its deadline; one
    # timer per connection, the watchdog, checks it and is re-armed when it finds a later
    # deadline or the next head begins, instead of a timer started and cancelled per head. A
    # read is counted whole, and exactly only over a bound. The head's state lives in slots:
    # uvicorn's protocol sets 28 attributes, and past 30 CPython stops sharing the instance
    # dict's keys, which slows every attribute read of uvicorn's own code (about 3,000 more).
    __slots__ = (
        "awaiting_head",
        "head_bytes",
        "head_deadline",
        "head_lines",
        "reading_head",
        "watchdog",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading_head = False
        self.awaiting_head = False
        self.head_bytes = 0
        self.head_lines = 0
        self.head_deadline = 0.0
        self.watchdog: asyncio.TimerHandle | None = None

    def _start_head(self) -> None:
        self.reading_head = True
        self.awaiting_head = False
        self.head_bytes = 0
        self.head_lines = 0
        self.head_deadline = self.loop.time() + MAX_HEAD_SECONDS
        if self.watchdog is None:
            self.watchdog = self.loop.call_at(self.head_deadline, self._watch)

    def _watch(self) -> None:
        self.watchdog = None
        if not self.reading_head or self.transport.is_closing():
            return  # the next head arms it again
        if self.loop.time() < self.head_deadline:
            # The head being read began after the one this timer was set for.
            self.watchdog = self.loop.call_at(self.head_deadline, self._watch)
            return
        if self.head_bytes == 0:
            self.reading_head = False
            self.transport.close()
            return
        self._refuse(
            HTTPStatus.REQUEST_TIMEOUT,
            f"The request line and headers took over {MAX_HEAD_SECONDS:g} seconds",
        )

    def _refuse(self, status: HTTPStatus, detail: str) -> None:
        self.reading_head = False
        body = problem_body(status, detail)
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\n"
            f"content-type: {PROBLEM_CONTENT_TYPE}\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self.reading_head = False
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.awaiting_head:
            self._start_head()
        if self.reading_head:
            # The lines are the request line, one per header and the empty one that ends the
            # head. The whole read counts first; only over a bound is the count made exact.
            self.head_bytes += len(data)
            self.head_lines += data.count(b"\n")
            if (
                self.head_bytes > MAX_HEAD_BYTES or self.head_lines > MAX_HEADERS + 2
            ) and self._head_over_bounds(data):
                return
        super().data_received(data)

    def _head_over_bounds(self, data: bytes) -> bool:
        """Refuse the head if it is still over a bound once the bytes that follow its end in
        this read (a body, or the next request) no longer count."""
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            self.head_bytes -= len(data) - (end + 4)
            self.head_lines -= data.count(b"\n", end + 4)
        if self.head_bytes > MAX_HEAD_BYTES:
            detail = f"The request line and headers are over {MAX_HEAD_BYTES} bytes"
        elif self.head_lines > MAX_HEADERS + 2:
            detail = f"The request has over {MAX_HEADERS} headers"
        else:
            return False
        self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, detail)
        return True

    def on_response_complete(self) -> None:
        # The next bytes on a kept-alive connection begin the next request's head (its time
        # runs from then on), unless that request arrived with this one. Until then the
        # connection is idle, and uvicorn's keep-alive timeout applies.
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined and not self.reading_head:
            self.awaiting_head = True

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self.reading_head:
            self._start_head()

    def on_headers_complete(self) -> None:
        self.reading_head = False
        super().on_headers_complete()
