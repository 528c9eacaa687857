"""Problem details (RFC 9457) for every error response.

Each body is `application/problem+json` with `type`, `title`, `status`, `detail` and the
request id, so a client can quote it and an operator can find the matching log line.
"""

from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Send

from .log import request_id

PROBLEM_CONTENT_TYPE = "application/problem+json"


class Problem(BaseModel):
    """The body of every error response; some add members (`errors` for 422, `checks`)."""

    type: str = Field(examples=["about:blank"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(ge=400, le=599)
    detail: str
    request_id: str | None = Field(description="The X-Request-ID of the request")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="422 only: each invalid field's loc, msg and type"
    )


_PROBLEM_SCHEMA = {"schema": Problem.model_json_schema()}
_PROBLEM_CONTENT = {PROBLEM_CONTENT_TYPE: _PROBLEM_SCHEMA}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries: each of `statuses` answers application/problem+json."""
    return {
        status: {"description": HTTPStatus(status).phrase, "content": _PROBLEM_CONTENT}
        for status in statuses
    }


def problem_body(status: int, detail: str, extensions: Mapping[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "request_id": request_id.get(),
    }
    if extensions:
        body.update(extensions)
    return orjson.dumps(body)


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> Response:
    return Response(
        problem_body(status, detail, extensions),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_CONTENT_TYPE,
    )


async def send_problem(
    send: Send, status: int, detail: str, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Send a complete problem response from plain ASGI code (middleware)."""
    body = problem_body(status, detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _default_detail(status: int) -> str:
    return HTTPStatus(status).description or HTTPStatus(status).phrase


def _allowed_methods(request: Request) -> str:
    """The methods of every route at the request's path (Starlette's 405 names only the first
    route's, and a path with a route per method has several)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route_methods
    return ", ".join(sorted(methods))


async def _http_exception(request: Request, exc: HTTPException) -> Response:
    detail = exc.detail if isinstance(exc.detail, str) else _default_detail(exc.status_code)
    headers = exc.headers
    if exc.status_code == HTTPStatus.NOT_FOUND and exc.detail == "Not Found":
        detail = f"No resource at {request.url.path}"
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        detail = f"{request.method} is not allowed on {request.url.path}"
        headers = {**(exc.headers or {}), "Allow": _allowed_methods(request)}
    return problem_response(request, exc.status_code, detail, headers=headers)


def _public_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    # The submitted values are left out on purpose: they may hold passwords or tokens.
    return [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]} for error in errors
    ]


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    errors = _public_errors(exc.errors())
    count = len(errors)
    return problem_response(
        request,
        HTTPStatus.UNPROCESSABLE_ENTITY,
        f"The request has {count} invalid field{'s' if count != 1 else ''}",
        extensions={"errors": errors},
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.exception_handler(HTTPException)(_http_exception)
    app.exception_handler(RequestValidationError)(_validation_error)
