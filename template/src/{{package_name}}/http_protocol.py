"""uvicorn's httptools protocol, with bounds on each request head (request line and headers).

uvicorn with httptools bounds neither the size of a request head nor its number of headers,
and gives a client all the time it wants to send them (its h11 protocol bounds the size, at
several times the cost per request; neither has a time bound): one 20 MiB header, 200,000
headers or a head sent a byte every few seconds would each hold memory or a connection. Here:

- a head over MAX_HEAD_BYTES, or with more than MAX_HEADERS headers, is answered 431 and the
  connection closed, before the parser has buffered more than one read of it;
- a head not complete MAX_HEAD_SECONDS after the connection opened (on a kept-alive
  connection: after its first byte) is answered 408 and the connection closed; a new
  connection that sent nothing at all is closed silently. Between two requests of a kept-alive
  connection, the idle time is uvicorn's keep-alive timeout (KEEP_ALIVE_TIMEOUT), which may be
  longer (behind a load balancer that keeps connections open for a minute, say);
- the rest of a body the service answered without reading is discarded as it arrives, as
  uvicorn does; it must all arrive within MAX_HEAD_SECONDS of the answer, else the connection
  is closed.

The count is exact: a head is the bytes from its request line to the blank line that ends it
(the parser accepts CRLF line ends only), whatever shares a read with it: the body after it,
the next request of a pipeline, the rest of a body the service did not read. To know where a
body ends, a read is fed to the parser in pieces: a Content-Length body ends after that many
bytes, a chunked one at the first blank line after which the parser says the message ended.

A request target in absolute form (`GET http://host/path`) names the host the request is for:
the server uses it instead of the Host header (RFC 9112, 3.2.2), so the Host header the app
sees, and checks against TRUSTED_HOSTS, is the target's. What the protocol answers itself
(a request that is not valid HTTP/1.1: 400; 431; 408) is problem+json with a request id, like
the app's answers. The body keeps its own bounds (MAX_REQUEST_BODY_BYTES and
REQUEST_BODY_TIMEOUT_SECONDS, in the app's middleware).
"""

import asyncio
import re
from http import HTTPStatus
from random import getrandbits
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .middleware.context import security_headers
from .problems import PROBLEM_CONTENT_TYPE, problem_body

MAX_HEAD_BYTES = 32 * 1024
MAX_HEADERS = 100
MAX_HEAD_SECONDS = 10.0

_BLANK_LINE = b"\r\n\r\n"
_NOT_CRLF = re.compile(rb"[^\r\n]")
_CHUNKED = -1
_HEADERS = b"".join(name + b": " + value + b"\r\n" for name, value in security_headers(hsts=False))


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    # Each head costs a search for its blank line and a count of its line ends, and a request
    # whose head is in one read (nearly all) takes no clock reading: a head's time starts only
    # once a read ends inside it. One timer per connection, the watchdog, checks the deadline
    # and is re-armed when it finds a later one, instead of a timer started and cancelled per
    # head. The state lives in slots: uvicorn's protocol sets 28 attributes, and past 30
    # CPython stops sharing the instance dict's keys, which slows every attribute read of
    # uvicorn's own code.
    __slots__ = (
        "body_left",
        "deadline",
        "head_bytes",
        "head_lines",
        "in_head",
        "refusal",
        "tail",
        "watchdog",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The parser is between two messages or inside a head (not in a body).
        self.in_head = True
        self.head_bytes = 0
        self.head_lines = 0
        # Bytes of a Content-Length body still to come, or _CHUNKED.
        self.body_left = 0
        # The end of the previous read when it may be the start of a blank line ("\r\n\r").
        self.tail = b""
        # When the head being read, or the rest of a body already answered, runs out of time
        # (0: nothing is timed).
        self.deadline = 0.0
        self.watchdog: asyncio.TimerHandle | None = None
        # A refusal that waits for the answers to the requests before it.
        self.refusal: tuple[HTTPStatus, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self.deadline = 0.0
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if (
            self.in_head
            and not self.head_bytes
            and 0 <= len(data) - 4 == data.find(_BLANK_LINE)  # its first blank line ends it
            and data[0] not in b"\r\n"
            and len(data) <= MAX_HEAD_BYTES
            and data.count(b"\n") <= MAX_HEADERS + 2
            and self.refusal is None
        ):
            # The usual read: one whole head within the bounds, and nothing after it.
            self.deadline = 0.0
            try:
                self.parser.feed_data(data)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as error:
                self._parse_failed(error)
                return
            if not self.in_head:
                self.body_left = self._body_length()
            return
        self._receive(data)

    def _receive(self, data: bytes) -> None:
        """Any read: the parts of heads counted, each part fed to the parser on its own."""
        if self.refusal is not None:
            return
        # What is left of the read is data[start:]: pieces are fed as views, never copied.
        start, size = 0, len(data)
        while start < size:
            if self.in_head:
                if not self.head_bytes and data[start] in b"\r\n":
                    # The parser skips blank lines before a request line: no part of a head.
                    found = _NOT_CRLF.search(data, start)
                    start = found.start() if found else size
                    if not self.deadline:
                        self._start_clock()
                    continue
                end = self._blank_line_end(data, start)
                stop = size if end < 0 else end
                self.head_bytes += stop - start
                # The lines are the request line, one per header and the blank one.
                self.head_lines += data.count(b"\n", start, stop)
                if self.head_bytes > MAX_HEAD_BYTES:
                    detail = f"The request line and headers are over {MAX_HEAD_BYTES} bytes"
                    self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, detail)
                    return
                if self.head_lines > MAX_HEADERS + 2:
                    detail = f"The request has over {MAX_HEADERS} headers"
                    self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, detail)
                    return
                if end < 0:
                    if not self.deadline:
                        self._start_clock()  # its time runs from its first byte
                    self._feed(data, start, size)
                    return
                self.head_bytes = self.head_lines = 0
                self.deadline = 0.0
                if not self._feed(data, start, end):
                    return
                start = end
                if not self.in_head:
                    self.body_left = self._body_length()
            elif self.body_left > 0:
                end = min(size, start + self.body_left)
                self.body_left -= end - start
                if not self._feed(data, start, end) or not self.in_head:
                    return
                start = end
                self._body_complete(more=start < size)
            elif self.body_left == _CHUNKED:
                end = self._blank_line_end(data, start)
                if end < 0:
                    end = size
                if not self._feed(data, start, end):
                    return
                start = end
                if self.in_head:
                    self._body_complete(more=start < size)
            else:
                self._feed(data, start, size)
                return

    def _blank_line_end(self, data: bytes, start: int) -> int:
        """The index in `data` just after the first CRLF CRLF from `start` on, which may have
        begun at the end of the previous read; -1 when there is none."""
        tail = self.tail
        if tail:
            self.tail = b""
            found = (tail + data[start : start + 3]).find(_BLANK_LINE)
            if found >= 0:
                return start + found + 4 - len(tail)
        found = data.find(_BLANK_LINE, start)
        if found >= 0:
            return found + 4
        last = (tail + data[max(start, len(data) - 3) :])[-3:]
        for begun in (b"\r\n\r", b"\r\n", b"\r"):
            if last.endswith(begun):
                self.tail = begun
                break
        return -1

    def _body_length(self) -> int:
        # The parser has refused a request with both, or with a transfer coding not chunked.
        for name, value in self.headers:
            if name == b"transfer-encoding":
                return _CHUNKED
            if name == b"content-length":
                return int(value)
        return 0

    def _body_complete(self, *, more: bool) -> None:
        self.body_left = 0
        self.tail = b""
        if self.deadline:
            # The rest of a body answered before it was read: the connection is idle now,
            # unless the next request came with it.
            self.deadline = 0.0
            if not more and not self.transport.is_closing():
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )

    def _feed(self, data: bytes, start: int, end: int) -> bool:
        """Parse data[start:end]; False when the connection is done with HTTP/1.1 or with this
        read."""
        try:
            if start == 0 and end == len(data):
                self.parser.feed_data(data)
            else:
                self.parser.feed_data(memoryview(data)[start:end])
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as error:
            self._parse_failed(error)
            return False
        return True

    def _parse_failed(self, error: Exception) -> None:
        if isinstance(error, httptools.HttpParserUpgrade):
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            # Otherwise the request was served as plain HTTP (a server may ignore Upgrade);
            # what followed it in this read is dropped, as uvicorn does.
            return
        self.logger.warning("Invalid HTTP request received.")
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # no second response in the middle of one
        else:
            self._refuse(HTTPStatus.BAD_REQUEST, f"The request is not valid HTTP/1.1: {error}")

    def _start_clock(self) -> None:
        self.deadline = self.loop.time() + MAX_HEAD_SECONDS
        if self.watchdog is None:
            self.watchdog = self.loop.call_at(self.deadline, self._watch)

    def _watch(self) -> None:
        self.watchdog = None
        if not self.deadline or self.transport.is_closing():
            return  # the next deadline arms it again
        if self.loop.time() < self.deadline:
            # The deadline was moved on since this timer was set.
            self.watchdog = self.loop.call_at(self.deadline, self._watch)
            return
        if self.in_head and self.head_bytes:
            self._refuse(
                HTTPStatus.REQUEST_TIMEOUT,
                f"The request line and headers took over {MAX_HEAD_SECONDS:g} seconds",
            )
            return
        # Nothing of a request in time, or not the rest of a body already answered: no one
        # is waiting for an answer.
        self.deadline = 0.0
        self.transport.close()

    def _refuse(self, status: HTTPStatus, detail: str) -> None:
        self.deadline = 0.0
        if self.in_head and self.cycle is not None and not self.cycle.response_complete:
            # Pipelined after requests still being answered: answered after them, in order.
            self.refusal = (status, detail)
            return
        self._send_refusal(status, detail)

    def _send_refusal(self, status: HTTPStatus, detail: str) -> None:
        request_id = getrandbits(128).to_bytes(16).hex()
        body = problem_body(status, detail, {"request_id": request_id})
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\n"
            f"content-type: {PROBLEM_CONTENT_TYPE}\r\n"
            f"content-length: {len(body)}\r\n"
            f"x-request-id: {request_id}\r\n"
            "connection: close\r\n"
        )
        self.transport.write(head.encode() + _HEADERS + b"\r\n" + body)
        self.transport.close()

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.url[:1] != b"/":
            self._use_target_host()
        super().on_headers_complete()

    def _use_target_host(self) -> None:
        """Make the Host header the authority of an absolute-form target, if it has one."""
        try:
            target = httptools.parse_url(self.url)
        except httptools.HttpParserInvalidURLError:
            return  # uvicorn refuses it
        if not target.host:
            return
        host = b"[" + target.host + b"]" if b":" in target.host else target.host
        if target.port is not None:
            host += b":%d" % target.port
        # The scope holds this same list: change it in place.
        self.headers[:] = [(name, value) for name, value in self.headers if name != b"host"]
        self.headers.append((b"host", host))

    def on_message_complete(self) -> None:
        self.in_head = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.in_head and self.refusal is None:
            return  # the usual case: nothing waits for this answer
        if self.transport.is_closing() or not self.cycle.response_complete:
            return  # closed, or the next request of a pipeline is being answered
        if self.refusal is not None:
            self._send_refusal(*self.refusal)
        elif not self.in_head:
            # Answered before its body was all read (a 404, a 413...): the parser discards the
            # rest as it arrives, in the time a head has.
            self._start_clock()
