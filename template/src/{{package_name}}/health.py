"""Health probes.

- `/health/live`: the process answers; no dependency is checked (a restart would not help).
- `/health/startup`: the lifespan has opened every resource.
- `/health/ready`: each dependency with its status and latency (and the details a check
  returns); 503 when one is down or while the service drains before shutting down.
"""

import asyncio
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

import structlog
from fastapi import FastAPI, Request
from starlette.responses import Response

from .lifecycle import Lifecycle
from .problems import problem_response, problem_responses

# A check raises when its dependency is down; it may return details to report.
ReadinessCheck = Callable[[], Awaitable[dict[str, Any] | None]]

logger = structlog.get_logger(__name__)


async def live() -> dict[str, str]:
    return {"status": "ok"}


async def startup(request: Request) -> dict[str, str] | Response:
    lifecycle: Lifecycle = request.app.state.lifecycle
    if not lifecycle.started:
        return problem_response(request, 503, "The service is still starting")
    return {"status": "ok"}


async def _run_check(check: ReadinessCheck, budget: float) -> dict[str, Any]:
    started = perf_counter()
    error: str | None = None
    details: dict[str, Any] | None = None
    try:
        details = await asyncio.wait_for(check(), budget)
    except TimeoutError:
        error = f"no answer within {budget:g}s"
    except Exception as exc:  # any failure means "not ready": reported, never raised
        error = type(exc).__name__
        logger.warning("readiness.check_failed", error=repr(exc))
    result: dict[str, Any] = {
        "status": "down" if error else "ok",
        "latency_ms": round((perf_counter() - started) * 1000, 3),
    }
    if error:
        result["error"] = error
    if details:
        result.update(details)
    return result


async def ready(request: Request) -> dict[str, Any] | Response:
    state = request.app.state
    lifecycle: Lifecycle = state.lifecycle
    checks: dict[str, ReadinessCheck] = state.readiness_checks
    timeout: float = state.settings.readiness_timeout_seconds
    results = await asyncio.gather(*(_run_check(check, timeout) for check in checks.values()))
    report = dict(zip(checks, results, strict=True))
    if lifecycle.draining:
        return problem_response(
            request, 503, "The service is shutting down", extensions={"checks": report}
        )
    down = sorted(name for name, result in report.items() if result["status"] != "ok")
    if down:
        detail = f"Unavailable: {', '.join(down)}"
        return problem_response(request, 503, detail, extensions={"checks": report})
    return {"status": "ok", "checks": report}


def install_health(app: FastAPI) -> None:
    """Add the probes to the app itself, ahead of every other route.

    Probes are called all the time: registered directly, they skip the per-request route
    resolution that an included APIRouter costs.
    """
    app.add_api_route("/health/live", live, methods=["GET"], tags=["health"])
    # These two answer either a report or a problem response.
    unavailable = problem_responses(503)
    for name, endpoint in (("startup", startup), ("ready", ready)):
        app.add_api_route(
            f"/health/{name}",
            endpoint,
            methods=["GET"],
            tags=["health"],
            response_model=None,
            responses=unavailable,
        )
