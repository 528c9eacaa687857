"""Where the generated service's per-request time goes, in process, without a network.

Calls each ASGI app directly with a GET /health/live scope like uvicorn's (an uvloop event
loop, no sockets, no HTTP parsing) and reports microseconds per request: the bare FastAPI
app, the full generated app, the generated app with its access log filtered out, and the
generated routes behind one middleware layer at a time. The server's own share (HTTP
parsing, socket writes) is the same for every app and is not in these figures; see
throughput.py for the end-to-end numbers. Log lines go to /dev/null here (fd 1 redirected),
so the cost of a pipe to a log collector is not included either.

Each figure is the best of `--repeat` batches of `--requests` calls, pinned to one core,
so it is stable on a noisy machine. It asserts nothing.

Run with the template's environment; it renders and installs the default service unless
given one with --project:

    .venv/bin/python bench/breakdown.py [--project PATH] [--requests 20000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a rendered and installed default project")
    parser.add_argument("--requests", type=int, default=20_000, help="calls per batch")
    parser.add_argument("--repeat", type=int, default=5, help="batches per app (best is kept)")
    parser.add_argument("--cpu", type=int, default=0, help="core to run on (default: 0)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ------------------------------------------------------------------- driver (template venv)


def drive(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT / "tests"))
    import harness

    with tempfile.TemporaryDirectory(prefix="chf-breakdown-") as tmp:
        project = args.project
        if project is None:
            project = Path(tmp) / "service"
            version = str(harness.copier_questions()["python_version"]["default"])
            harness.render(project, {})
            harness.install(project, version)
        project = project.resolve()
        command = [
            "taskset", "-c", str(args.cpu), str(project / ".venv" / "bin" / "python"),
            str(Path(__file__).resolve()), "--worker",
            "--requests", str(args.requests), "--repeat", str(args.repeat),
        ]  # fmt: skip
        env = {**harness.service_env(port=8000), "PYTHONPATH": str(BENCH)}
        with open(os.devnull, "wb") as devnull:
            # fd 1 (the apps' log stream) -> /dev/null; the report is written to fd 2.
            result = subprocess.run(command, cwd=project, env=env, stdout=devnull)
        return result.returncode


# ------------------------------------------------------------------ worker (project venv)


def worker(args: argparse.Namespace) -> int:
    import asyncio
    import time
    import timeit
    import uuid

    import structlog
    import uvloop
    from fastapi import FastAPI
    from starlette.middleware import Middleware
    from starlette.middleware.gzip import GZipMiddleware

    package = next(p.name for p in (Path.cwd() / "src").iterdir() if (p / "main.py").exists())
    main = __import__(f"{package}.main", fromlist=["create_app"])
    health = __import__(f"{package}.health", fromlist=["router"])
    problems = __import__(f"{package}.problems", fromlist=["x"])
    context = __import__(f"{package}.middleware.context", fromlist=["x"])
    body_limit = __import__(f"{package}.middleware.body_limit", fromlist=["x"])
    hosts = __import__(f"{package}.middleware.hosts", fromlist=["x"])
    settings_module = __import__(f"{package}.settings", fromlist=["Settings"])
    log = __import__(f"{package}.log", fromlist=["configure_logging"])
    import bare_app

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def settings(**overrides: object) -> object:
        return settings_module.Settings(**overrides)

    def routes_only(middleware: list[Middleware]) -> FastAPI:
        app = FastAPI(middleware=middleware, docs_url=None, redoc_url=None)
        problems.install_problem_handlers(app)
        app.include_router(health.router)
        return app

    headers = context.security_headers(hsts=False)
    request_headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"wrk"),
        (b"accept", b"*/*"),
    ]

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[int] = []

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            sent.append(message["status"])  # type: ignore[arg-type]

    def scope() -> dict[str, object]:
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 40000),
            "scheme": "http",
            "method": "GET",
            "root_path": "",
            "path": "/health/live",
            "raw_path": b"/health/live",
            "query_string": b"",
            "headers": list(request_headers),
            "state": {},
        }

    async def batch(app: object, n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await app(scope(), receive, send)  # type: ignore[operator]
        return time.perf_counter() - started

    def measure(app: object) -> float:
        loop = uvloop.new_event_loop()
        try:
            loop.run_until_complete(batch(app, 500))  # warm up: builds the middleware stack
            sent.clear()
            best = min(
                loop.run_until_complete(batch(app, args.requests)) for _ in range(args.repeat)
            )
        finally:
            loop.close()
        if set(sent) != {200}:
            raise SystemExit(f"unexpected statuses {set(sent)}")
        return best / args.requests * 1e6

    def configure(level: str) -> None:
        log.configure_logging(level, "json")

    results: list[tuple[str, float]] = []

    def row(name: str, app: object) -> float:
        value = measure(app)
        results.append((name, value))
        report(f"  {name:<58}{value:>8.1f} us")
        return value

    report(f"breakdown: {args.requests} in-process calls x {args.repeat}, best batch, uvloop")
    report("  (the server's HTTP parsing and socket writes are not included)")
    report("")
    configure("info")
    bare = row("bare FastAPI app (bench/bare_app.py)", bare_app.app)
    full = row("generated app, create_app() (LOG_FORMAT=json, dev)", main.create_app(settings()))
    configure("warning")
    quiet = row("generated app, access log filtered (LOG_LEVEL=warning)", main.create_app(
        settings(log_level="warning")
    ))  # fmt: skip
    no_docs = row("generated app, DOCS_ENABLED=false", main.create_app(
        settings(docs_enabled=False)
    ))  # fmt: skip
    configure("info")
    base = row("generated routes + problem handlers, no middleware", routes_only([]))
    layers = {
        "RequestContextMiddleware (id, access log, headers)": Middleware(
            context.RequestContextMiddleware, headers=headers
        ),
        "TrustedHostMiddleware (skips /health/)": Middleware(
            hosts.TrustedHostMiddleware, allowed_hosts=["localhost", "127.0.0.1", "::1"]
        ),
        "BodySizeLimitMiddleware": Middleware(
            body_limit.BodySizeLimitMiddleware, max_body_bytes=1_048_576
        ),
        "GZipMiddleware (no Accept-Encoding: passes through)": Middleware(
            GZipMiddleware, minimum_size=1024
        ),
    }
    deltas = {}
    for name, layer in layers.items():
        deltas[name] = row(f"  + {name}", routes_only([layer])) - base

    report("")
    report("Pieces (timeit, best of 5):")
    logger = structlog.get_logger("access").bind()
    pieces = {
        "uuid4().hex": lambda: uuid.uuid4().hex,
        "bind_contextvars + reset_contextvars": lambda: structlog.contextvars.reset_contextvars(
            **structlog.contextvars.bind_contextvars(request_id="abc")
        ),
        "access-log line: logger.info(...) to /dev/null": lambda: logger.info(
            "request", method="GET", path="/health/live", route="/health/live",
            status=200, duration_ms=0.123, client="127.0.0.1",
        ),  # fmt: skip
    }
    number = 20_000
    for name, function in pieces.items():
        value = min(timeit.repeat(function, number=number, repeat=5)) / number * 1e6
        report(f"  {name:<58}{value:>8.1f} us")

    report("")
    report("Summary (us per request, app only):")
    report(f"  generated - bare                       {full - bare:>7.1f}")
    report(f"  of which the access log line           {full - quiet:>7.1f}")
    report(f"  docs routes (DOCS_ENABLED=false saves) {full - no_docs:>7.1f}")
    report(f"  routes + handlers, no middleware - bare{base - bare:>7.1f}")
    for name, delta in deltas.items():
        report(f"  {name[:38]:<38} {delta:>7.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    if not shutil.which("taskset"):
        raise SystemExit("breakdown.py needs taskset")
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
