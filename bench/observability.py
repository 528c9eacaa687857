"""Throughput cost of observability: bare FastAPI, the default service (Prometheus metrics),
and the service with every observability option (Prometheus, OpenTelemetry, Sentry).

Same method as throughput.py (one uvicorn worker each, servers pinned to one core and wrk to
the other, interleaved rounds, medians), measured on two paths:

- `GET /health/live`, the path of throughput.py: counted by the metrics middleware, but not
  traced (probes are excluded) and not sent to Sentry;
- `GET /openapi.json`: a traced route, so the all-on service pays for its spans (sampled
  at the default ratio, 0.1) and their export. The generated schema is larger than bare
  FastAPI's one-route schema, so on this path all-on is compared with default (same
  routes, same schema): the ratio is the cost of tracing and error tracking alone.

The all-on service exports its spans over OTLP/HTTP to a local sink and has `SENTRY_DSN`
pointing at a local sink, both served by this script, so nothing is left unconfigured.
It prints ratios from this one run and asserts nothing about time.

    .venv/bin/python bench/observability.py [--duration 3] [--rounds 5] [--path both]
"""

from __future__ import annotations

import argparse
import datetime
import http.server
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests"))

import harness  # noqa: E402
import throughput  # noqa: E402

TARGETS = {"default/bare": 0.90, "all-on/bare": 0.70, "all-on/default": 0.70 / 0.90}
VARIANTS = {
    "default": {},
    "all-on": {"observability": ["prometheus", "otel", "sentry"]},
}
PATHS = {"live": "/health/live", "traced": "/openapi.json"}
PAIRS = {
    "/health/live": [("default", "bare"), ("all-on", "bare")],
    "/openapi.json": [("all-on", "default")],
}


class Sink:
    """Accepts any POST (OTLP spans, Sentry envelopes) and counts them."""

    def __init__(self) -> None:
        self.posts = 0
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                sink.posts += 1
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds per server")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--path", choices=("live", "traced", "both"), default="both")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    return parser.parse_args()


def prepare(stack: ExitStack) -> dict[str, Path]:
    tmp = Path(tempfile.mkdtemp(prefix="chf-obs-bench-"))
    stack.callback(shutil.rmtree, tmp, ignore_errors=True)
    python_version = str(harness.copier_questions()["python_version"]["default"])
    projects = {}
    for name, answers in VARIANTS.items():
        started = time.monotonic()
        project = tmp / name
        harness.render(project, answers)
        harness.install(project, python_version)
        print(f"  rendered and installed {name} in {time.monotonic() - started:.0f}s")
        projects[name] = project
    return projects


def measure(
    servers: dict[str, throughput.Server], path: str, args: argparse.Namespace
) -> dict[str, float]:
    for server in servers.values():
        server.samples.clear()
    throughput.interleaved_rounds(servers, path, args, label=f"{path} ")
    medians = {n: statistics.median(s.rps for s in server.samples) for n, server in servers.items()}
    print(f"\n  {path}: median req/s " + ", ".join(f"{n} {v:.0f}" for n, v in medians.items()))
    pairs = PAIRS[path]
    for name, reference in pairs:
        paired = [
            a.rps / b.rps
            for a, b in zip(servers[name].samples, servers[reference].samples, strict=True)
        ]
        rounds = ", ".join(f"{r:.2f}" for r in paired)
        print(f"  {name}/{reference} per round: {rounds}")
    errors = [f"{n}: {s.errors}" for n, sv in servers.items() for s in sv.samples if s.errors]
    if errors:
        print("  wrk reported errors: " + " | ".join(errors))
    return {f"{name}/{ref}": medians[name] / medians[ref] for name, ref in pairs}


def main() -> int:
    args = parse_args()
    if not shutil.which("wrk") or not shutil.which("taskset"):
        raise SystemExit("observability.py needs wrk and taskset on PATH")
    os.sched_setaffinity(0, {int(c) for c in args.client_cpu.split(",")})
    now = datetime.datetime.now().astimezone()
    print(f"observability: {now:%Y-%m-%d %H:%M %Z}, load {throughput.load()}")
    print(f"  {throughput.template_state()}")
    sink = Sink()
    with ExitStack() as stack:
        projects = prepare(stack)
        bare_command = throughput.reference_command(projects["default"], "bare_app", "0")
        bare = stack.enter_context(throughput.own_service(projects["default"], bare_command))
        servers = {"bare": throughput.Server("bare", bare, "no log")}
        for name, project in projects.items():
            env = {"LOG_FORMAT": "json"}
            if name == "all-on":
                env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink.port}"
                env["SENTRY_DSN"] = f"http://public@127.0.0.1:{sink.port}/1"
            slug = throughput.project_slug(project)
            service = stack.enter_context(harness.serving(project, slug, env))
            servers[name] = throughput.Server(name, service, "JSON access log -> pipe")
        for server in servers.values():
            throughput.pin(server.pid, args.server_cpu)
        print(f"  {throughput.library_versions(projects['all-on'])}")
        chosen = list(PATHS) if args.path == "both" else [args.path]
        results = {key: measure(servers, PATHS[key], args) for key in chosen}
        time.sleep(1)
        print(f"  posts received by the OTLP/Sentry sink: {sink.posts}")
        print(f"  load average at the end: {throughput.load()}\n")
        for key, ratios in results.items():
            for name, ratio in ratios.items():
                print(f"{name} {PATHS[key]} = {ratio:.2f} (target >= {TARGETS[name]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
