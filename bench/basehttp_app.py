"""The "basehttp" server of bench/throughput.py: the hardened features, written the common way.

The same features as the generated service's request-context layer (request id, JSON access
log with structlog, security headers, a body-size check on Content-Length, a last-resort
error handler) but as five separate `BaseHTTPMiddleware` classes, as many services write
them. It is a reference point for the benchmark only: the template never uses this file.

Logging is configured like the generated service's JSON mode (same processors, orjson,
bytes written to standard output), so the difference measured is the middleware style.
"""

import logging
import re
import sys
from time import perf_counter
from typing import Any
from uuid import uuid4

import orjson
import structlog
from fastapi import FastAPI, Request
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import JSONResponse, Response

MAX_BODY_BYTES = 1_048_576
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
    "cache-control": "no-store",
}

_tracebacks = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)
structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _tracebacks,
        structlog.processors.JSONRenderer(serializer=orjson.dumps),
    ],
    wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    logger_factory=structlog.BytesLoggerFactory((sys.__stdout__ or sys.stdout).buffer),
    cache_logger_on_first_use=True,
)
logger = structlog.get_logger("access")


def _problem(status: int, detail: str, request: Request) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    return JSONResponse(
        {"status": status, "detail": detail, "request_id": request_id},
        status_code=status,
        media_type="application/problem+json",
    )


class RequestIdMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        given = request.headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid4().hex
        request.state.request_id = request_id
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            response = await call_next(request)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
        response.headers["x-request-id"] = request_id
        return response


class AccessLogMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        started = perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route: Any = request.scope.get("route")
            logger.info(
                "request",
                method=request.method,
                path=request.url.path,
                route=getattr(route, "path", None),
                status=status,
                duration_ms=round((perf_counter() - started) * 1000, 3),
                client=request.client.host if request.client else None,
            )


class ErrorHandlerMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        try:
            return await call_next(request)
        except Exception:
            logger.exception("unhandled_exception", method=request.method, path=request.url.path)
            return _problem(500, "An unexpected error occurred", request)


class SecurityHeadersMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


class BodySizeLimitMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return _problem(400, "Content-Length is not a number", request)
            if int(declared) > MAX_BODY_BYTES:
                detail = f"The request body is larger than {MAX_BODY_BYTES} bytes"
                return _problem(413, detail, request)
        return await call_next(request)


app = FastAPI(
    middleware=[  # outermost first
        Middleware(RequestIdMiddleware),
        Middleware(AccessLogMiddleware),
        Middleware(ErrorHandlerMiddleware),
        Middleware(SecurityHeadersMiddleware),
        Middleware(BodySizeLimitMiddleware),
    ]
)


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}
