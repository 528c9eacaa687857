"""Where the generated service's per-request time goes, in process, without a network.

Calls each ASGI app directly with a GET /health/live scope like uvicorn's (an uvloop event
loop, no sockets, no HTTP parsing) and reports, per request:

- calls: Python function calls (cProfile). Exact and the same on any machine: the figure
  to compare layers with;
- us: CPU time of the thread, best of `--repeat` interleaved batches. Indicative only: on a
  shared machine it still moves by 10-20 us from run to run.

Apps: the bare FastAPI app, the full generated app (also with its access log filtered and
without docs routes), and the generated routes behind one layer at a time (ablations.py).
Neither figure includes the server's share (HTTP parsing, header encoding, socket writes):
instructions.py counts that end to end. Log lines go to /dev/null here. It asserts nothing.

Run with the template's environment; it renders and installs the default service unless
given one with --project:

    .venv/bin/python bench/breakdown.py [--project PATH] [--requests 2000] [--repeat 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

BARE = "bare FastAPI app (bench/bare_app.py)"
PREFIXED = "bare app, its route in an APIRouter(prefix='/health')"
FULL = "generated app: create_app(), LOG_FORMAT=json, development"
NO_DOCS = "generated app, DOCS_ENABLED=false"
QUIET = "generated app, LOG_LEVEL=warning (no access-log line)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a rendered and installed default project")
    parser.add_argument("--requests", type=int, default=2000, help="calls per batch")
    parser.add_argument("--repeat", type=int, default=10, help="batches per app (best is kept)")
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
            project = harness.install_default(Path(tmp) / "service")
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
    import cProfile
    import gc
    import pstats
    import time
    from importlib import import_module

    import ablations
    import bare_app
    import uvloop
    from fastapi import APIRouter, FastAPI

    package = ablations._package()
    create_app = import_module(f"{package}.main").create_app
    settings_class = import_module(f"{package}.settings").Settings

    def report(line: str = "") -> None:
        print(line, file=sys.stderr, flush=True)

    def prefixed_app() -> FastAPI:
        router = APIRouter(prefix="/health")

        @router.get("/live")
        async def live() -> dict[str, str]:
            return {"status": "ok"}

        app = FastAPI()
        app.include_router(router)
        return app

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: set[int] = set()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    def scope() -> dict[str, Any]:
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
            "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
            "state": {},
        }

    async def batch(app: Any, n: int) -> float:
        # CPU time of this thread: time spent descheduled on a busy machine is not counted.
        # The collector is off while timing, as in timeit: this process holds every app at
        # once, and a full collection of that heap would land on whichever batch runs then.
        gc.collect()
        gc.disable()
        try:
            started = time.thread_time()
            for _ in range(n):
                await app(scope(), receive, send)
            return time.thread_time() - started
        finally:
            gc.enable()

    loop = uvloop.new_event_loop()
    apps: dict[str, Any] = {}

    def add(name: str, factory: Any) -> None:
        # Build the middleware stack now, on a first request: the access-log logger is bound
        # then, with the logging set-up of that moment (each factory sets up its own).
        app = factory()
        loop.run_until_complete(batch(app, 200))
        apps[name] = app

    add(BARE, lambda: bare_app.app)
    add(PREFIXED, prefixed_app)
    layers = ablations.ablations()
    for _, factory, label in layers:
        add(label, factory)
    add(FULL, lambda: create_app(settings_class()))
    add(NO_DOCS, lambda: create_app(settings_class(docs_enabled=False)))
    add(QUIET, lambda: create_app(settings_class(log_level="warning")))

    best = dict.fromkeys(apps, float("inf"))
    statuses.clear()
    for _ in range(args.repeat):  # the apps take turns, so a noisy moment hits them all
        for name, app in apps.items():
            best[name] = min(best[name], loop.run_until_complete(batch(app, args.requests)))
    calls = {}
    for name, app in apps.items():
        profile = cProfile.Profile()
        profile.enable()
        loop.run_until_complete(batch(app, 1000))
        profile.disable()
        calls[name] = pstats.Stats(profile).total_calls / 1000  # type: ignore[attr-defined]
    loop.close()
    if statuses != {200}:
        raise SystemExit(f"unexpected statuses: {sorted(statuses)}")
    micros = {name: value / args.requests * 1e6 for name, value in best.items()}

    report(f"breakdown: in-process ASGI calls, {args.repeat} x {args.requests} per app, uvloop")
    report("  calls = Python function calls per request (cProfile: exact)")
    report("  us = CPU us per request, best batch (indicative: noisy on a shared machine)")
    report()
    report(f"  {'app':<62}{'calls':>7}{'us':>8}")
    for name in apps:
        report(f"  {name:<62}{calls[name]:>7.0f}{micros[name]:>8.1f}")

    def delta(label: str, a: str, b: str) -> None:
        report(f"  {label:<62}{calls[a] - calls[b]:>+7.0f}{micros[a] - micros[b]:>+8.1f}")

    routes = layers[0][2]
    report()
    report("Differences (calls, us per request):")
    delta("generated app - bare app", FULL, BARE)
    delta("  bare route moved into an APIRouter with a prefix", PREFIXED, BARE)
    delta("  generated routes + problem handlers vs bare app", routes, BARE)
    for _, _, label in layers[1:]:
        delta(f"  {label}", label, routes)
    delta("  the access-log line (LOG_LEVEL info vs warning)", FULL, QUIET)
    delta("  the docs routes (DOCS_ENABLED unset vs false)", FULL, NO_DOCS)
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
