"""CORS for the origins in settings; a refused preflight answers with problem details."""

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from ..problems import PROBLEM_CONTENT_TYPE, problem_body


class ProblemCORSMiddleware(CORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        detail = bytes(response.body).decode() or "CORS preflight refused"
        return Response(
            problem_body(response.status_code, detail),
            status_code=response.status_code,
            headers={k: v for k, v in response.headers.items() if k.startswith("access-control")},
            media_type=PROBLEM_CONTENT_TYPE,
        )
