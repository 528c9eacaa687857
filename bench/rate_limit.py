"""Per-request cost of the rate limiter: GET /api/v1/info without a limiter, with the memory
limiter and with the Redis limiter, measured against each other in one run.

Three services are rendered from the same answers except `rate_limiter` (none, memory, redis;
no database, no auth, no observability, so the route does nothing but answer), installed
with uv, and booted with their own `<slug> serve` (one worker, JSON access log to a pipe
read by this script, as throughput.py's hardened server). The limit is set so high that
every request is admitted: each one pays for a hit and the RateLimit headers. The Redis
service talks to a private redis-server (no persistence) on 127.0.0.1.

The services are pinned to core 0, wrk and redis-server to core 1 (Redis's own CPU time is
not the service's; its round trip is part of the latency). After a warm-up, they are measured
in interleaved rounds whose order rotates; the table gives medians, and the last lines the
ratios to the service without a limiter. It asserts nothing about time.

    .venv/bin/python bench/rate_limit.py [--duration 3] [--rounds 6] [--connections 32]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))

import harness  # noqa: E402
import servers  # noqa: E402
from throughput import (  # noqa: E402
    Sample,
    Server,
    interleaved_rounds,
    load,
    pin,
    project_slug,
    template_state,
)

PATH = "/api/v1/info"
LIMITERS = ("none", "memory", "redis")
ANSWERS = {"database": "none", "auth": "none", "observability": []}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run (default: 3)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per service (default: 6)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default: 32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default: 1)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds each (default: 2)")
    parser.add_argument("--server-cpu", default="0", help="core for the services (default: 0)")
    parser.add_argument("--client-cpu", default="1", help="core for wrk and Redis (default: 1)")
    args = parser.parse_args(argv)
    if min(args.duration, args.rounds, args.connections, args.threads) < 1 or args.warmup < 0:
        parser.error("--duration, --rounds, --connections, --threads must be >= 1")
    return args


def prepare(base: Path) -> dict[str, Path]:
    """Render and install the three services (in parallel; uv shares its cache)."""
    python_version = str(harness.copier_questions()["python_version"]["default"])

    def build(limiter: str) -> Path:
        project = base / limiter / "service"
        harness.render(project, {**ANSWERS, "rate_limiter": limiter})
        harness.install(project, python_version)
        return project

    with ThreadPoolExecutor(len(LIMITERS)) as pool:
        return dict(zip(LIMITERS, pool.map(build, LIMITERS), strict=True))


def report(measured: dict[str, Server]) -> None:
    medians = {
        name: statistics.median(s.rps for s in server.samples) for name, server in measured.items()
    }
    cpu = {
        name: statistics.median(s.cpu_us_per_request for s in server.samples)
        for name, server in measured.items()
    }
    print()
    header = f"{'limiter':<9}{'req/s':>9}{'min-max req/s':>17}{'p99 ms':>9}{'CPU us/req':>12}"
    print(header)
    print("-" * len(header))
    for name, server in measured.items():
        samples: list[Sample] = server.samples
        spread = f"{min(s.rps for s in samples):.0f}-{max(s.rps for s in samples):.0f}"
        p99 = statistics.median(s.p99_ms for s in samples)
        print(f"{name:<9}{medians[name]:>9.0f}{spread:>17}{p99:>9.2f}{cpu[name]:>12.1f}")
    print("-" * len(header))
    errors = [f"{n}: {s.errors}" for n, sv in measured.items() for s in sv.samples if s.errors]
    if errors:
        print("  wrk reported errors: " + " | ".join(errors))
    for name in ("memory", "redis"):
        paired = [
            a.rps / b.rps
            for a, b in zip(measured[name].samples, measured["none"].samples, strict=True)
        ]
        print(f"  {name}/none per round: " + ", ".join(f"{r:.2f}" for r in paired))
    print(f"  load average at the end: {load()}")
    print()
    for name in ("memory", "redis"):
        extra = cpu[name] - cpu["none"]
        print(
            f"{name}/none = {medians[name] / medians['none']:.2f} req/s, "
            f"{cpu[name] / cpu['none']:.2f} CPU per request (+{extra:.1f} us)"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not shutil.which("wrk") or not shutil.which("taskset"):
        raise SystemExit("rate_limit.py needs wrk and taskset on PATH")
    os.sched_setaffinity(0, {int(c) for c in args.client_cpu.split(",")})
    now = datetime.datetime.now().astimezone()
    print(f"rate_limit: {now:%Y-%m-%d %H:%M %Z}, {os.cpu_count()} CPUs, load {load()}")
    print(f"  {template_state()}")
    with ExitStack() as stack:
        base = Path(tempfile.mkdtemp(prefix="chf-rate-limit-"))
        stack.callback(shutil.rmtree, base, ignore_errors=True)
        projects = prepare(base)
        redis = stack.enter_context(servers.private_redis())
        assert redis.process is not None
        pin(redis.process.pid, args.client_cpu)
        env = {"RATE_LIMIT_DEFAULT": "1000000000/minute", "LOG_FORMAT": "json"}
        measured: dict[str, Server] = {}
        for limiter, project in projects.items():
            extra = {**env, "REDIS_URL": redis.url} if limiter == "redis" else env
            service = stack.enter_context(harness.serving(project, project_slug(project), extra))
            measured[limiter] = Server(limiter, service, "JSON access log -> pipe")
            pin(measured[limiter].pid, args.server_cpu)
        print(
            f"  wrk -t{args.threads} -c{args.connections} -d{args.duration}s GET {PATH}; "
            f"services on core {args.server_cpu}, wrk and redis-server on core {args.client_cpu}"
        )
        interleaved_rounds(measured, PATH, args)
        report(measured)
    return 0


if __name__ == "__main__":
    sys.exit(main())
