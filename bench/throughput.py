"""Throughput and p99 latency of GET /health/live: bare FastAPI, the generated service, and
the same features written as BaseHTTPMiddleware classes.

Three servers, all with one uvicorn worker, uvloop + httptools, no uvicorn access log, no
Server header, no proxy-headers middleware, keep-alive 5 s, run by the interpreter of the
generated project's virtual environment (so every library version is the same):

- bare:     bench/bare_app.py, FastAPI with the one route;
- hardened: the generated default service, `<slug> serve` with LOG_FORMAT=json, booted by
            tests/harness.py; its stdout (one JSON access-log line per request) goes to a
            pipe that this script reads, as a container runtime would (`--log-sink devnull`
            sends it to /dev/null instead);
- basehttp: bench/basehttp_app.py, the hardened features as five BaseHTTPMiddleware layers,
            its JSON access log to the same kind of pipe.

Each server is pinned to one core (`taskset`, default core 0) and wrk to the other (default
core 1; this script's own pipe readers run there too). All three stay up and are measured in
interleaved rounds, the order rotating each round (A B C, B C A, C A B, ...), so a noisy
moment on a shared machine is spread over them; the table reports the median per server. It
is a benchmark: it prints ratios measured in this one run and asserts nothing about time.

Run with the template's environment (it renders and installs the service with copier and uv):

    .venv/bin/python bench/throughput.py [--duration 3] [--rounds 6] [--connections 32]
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))

import harness  # noqa: E402

PATH = "/health/live"
SERVERS = ("bare", "hardened", "basehttp")
TARGET = 0.90
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LIBRARIES = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "structlog", "orjson")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run (default: 3)")
    parser.add_argument(
        "--rounds", type=int, default=6, help="measured rounds per server (default: 6)"
    )
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default: 32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default: 1)")
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed wrk seconds per server first (default: 2)"
    )
    parser.add_argument(
        "--log-sink",
        choices=("pipe", "devnull"),
        default="pipe",
        help="where the hardened service's stdout goes (default: pipe, read by this script)",
    )
    parser.add_argument(
        "--project",
        type=Path,
        help="an already rendered and installed default project (skips render and install)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the rendered project and print its path"
    )
    parser.add_argument("--server-cpu", default="0", help="core for the servers (default: 0)")
    parser.add_argument("--client-cpu", default="1", help="core for wrk (default: 1)")
    args = parser.parse_args(argv)
    if min(args.duration, args.rounds, args.connections, args.threads) < 1 or args.warmup < 0:
        parser.error("--duration, --rounds, --connections, --threads must be >= 1")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    return args


# ---------------------------------------------------------------------------- wrk


@dataclass
class Sample:
    rps: float
    p99_ms: float
    requests: int
    cpu_s: float  # server CPU time (user + system) during the run
    errors: str = ""

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else float("nan")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _milliseconds(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(output: str) -> tuple[float, float, int, str]:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    if not (rps and p99 and total):
        raise RuntimeError(f"cannot parse wrk's output:\n{output}")
    errors = []
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors.append(f"{non_2xx.group(1)} non-2xx")
    sockets = re.search(r"Socket errors: (.+)", output)
    if sockets:
        errors.append(f"socket errors: {sockets.group(1).strip()}")
    return float(rps.group(1)), _milliseconds(*p99.groups()), int(total.group(1)), "; ".join(errors)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def run_wrk(
    url: str, args: argparse.Namespace, seconds: int, pid: int, headers: Sequence[str] = ()
) -> Sample:
    """One wrk run against `url` (each of `headers`, "Name: value", sent with every request)."""
    command = [
        "taskset",
        "-c",
        args.client_cpu,
        shutil.which("wrk") or "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--latency",
        *(part for header in headers for part in ("-H", header)),
        url,
    ]
    cpu_before = cpu_seconds(pid)
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    cpu_after = cpu_seconds(pid)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    rps, p99, requests, errors = parse_wrk(result.stdout)
    return Sample(rps, p99, requests, cpu_after - cpu_before, errors)


# ---------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    service: harness.Service
    stdout: str
    samples: list[Sample] = field(default_factory=list)
    log_lines: int = 0
    requests_sent: int = 0

    @property
    def pid(self) -> int:
        assert self.service.process is not None
        return self.service.process.pid

    def drain_log(self) -> None:
        """Count the access-log lines read from the pipe so far and free them."""
        lines = self.service.lines
        taken = list(lines)
        del lines[: len(taken)]
        self.log_lines += sum(1 for line in taken if '"event":"request"' in line)


def interleaved_rounds(
    servers: dict[str, Server],
    path: str,
    args: argparse.Namespace,
    label: str = "",
    *,
    with_p99: bool = False,
) -> None:
    """Warm each server up, then add `args.rounds` samples to each, in rounds whose order
    rotates so that no server is always measured first or last. Every request wrk completes,
    warm-up included, is counted in the server's `requests_sent`."""
    if args.warmup:
        for server in servers.values():
            warm = run_wrk(server.service.url + path, args, args.warmup, server.pid)
            server.requests_sent += warm.requests
    order = list(servers)
    for index in range(args.rounds):
        shift = index % len(order)
        line = []
        for name in order[shift:] + order[:shift]:
            server = servers[name]
            sample = run_wrk(server.service.url + path, args, args.duration, server.pid)
            server.samples.append(sample)
            server.requests_sent += sample.requests
            server.drain_log()
            p99 = f" req/s p99 {sample.p99_ms:.2f} ms" if with_p99 else ""
            line.append(f"{name} {sample.rps:.0f}{p99}")
        print(f"  {label}round {index + 1}/{args.rounds}: " + ", ".join(line), flush=True)


def pin(pid: int, cpu: str) -> None:
    """Pin every thread of `pid` to `cpu` and check that it holds."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(pid)], capture_output=True, check=True)
    wanted = {int(part) for part in cpu.split(",")}
    for task in Path(f"/proc/{pid}/task").iterdir():
        if os.sched_getaffinity(int(task.name)) != wanted:
            raise RuntimeError(f"could not pin thread {task.name} of {pid} to core {cpu}")


def own_service(project: Path, command: list[str]) -> AbstractContextManager[harness.Service]:
    """Like harness.serving, for a command of our own (same env, pipe, readiness probe)."""
    return harness.running(project, command)


def reference_command(project: Path, module: str, cpu: str) -> list[str]:
    """uvicorn's CLI with the settings the generated service passes to uvicorn.run()."""
    python = project / ".venv" / "bin" / "python"
    return [
        "taskset", "-c", cpu, str(python), "-m", "uvicorn",
        "--app-dir", str(BENCH), f"{module}:app",
        "--host", "127.0.0.1", "--port", "{port}", "--workers", "1",
        "--loop", "uvloop", "--http", "httptools",  # what "auto" resolves to, as in the service
        "--no-access-log", "--no-server-header", "--no-proxy-headers",
        "--timeout-keep-alive", "5", "--log-level", "warning",
    ]  # fmt: skip


def start_servers(
    stack: ExitStack, project: Path, slug: str, args: argparse.Namespace
) -> dict[str, Server]:
    servers = {}
    bare = stack.enter_context(
        own_service(project, reference_command(project, "bare_app", args.server_cpu))
    )
    servers["bare"] = Server("bare", bare, "no log")
    if args.log_sink == "pipe":
        hardened = stack.enter_context(harness.serving(project, slug, {"LOG_FORMAT": "json"}))
        sink = "JSON access log -> pipe read by this script"
    else:
        script = str(project / ".venv" / "bin" / slug)
        command = ["sh", "-c", 'exec "$0" serve >/dev/null', script]
        hardened = stack.enter_context(own_service(project, [*command]))
        sink = "JSON access log -> /dev/null"
    servers["hardened"] = Server("hardened", hardened, sink)
    basehttp = stack.enter_context(
        own_service(project, reference_command(project, "basehttp_app", args.server_cpu))
    )
    servers["basehttp"] = Server(
        "basehttp", basehttp, "JSON access log -> pipe read by this script"
    )
    for server in servers.values():
        pin(server.pid, args.server_cpu)
    return servers


# ---------------------------------------------------------------------------- project


def prepare_project(stack: ExitStack, args: argparse.Namespace) -> Path:
    if args.project:
        project = args.project.resolve()
        if not (project / ".venv" / "bin" / "python").exists():
            raise SystemExit(f"{project} has no .venv: render and install it first")
        return project
    tmp = Path(tempfile.mkdtemp(prefix="chf-throughput-"))
    if not args.keep:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
    started = time.monotonic()
    project = harness.install_default(tmp / "service")
    elapsed = time.monotonic() - started
    print(f"  rendered the default answers and installed them with uv in {elapsed:.0f}s")
    if args.keep:
        print(f"  project kept at {project}")
    return project


def project_slug(project: Path) -> str:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return str(answers["project_slug"])


def template_state() -> str:
    """The template version measured: its commit, and whether template/ had local edits."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "template", "copier.yml"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "template: not a git checkout"
    return f"template at {commit}" + (" + uncommitted changes in template/" if dirty else "")


def library_versions(project: Path) -> str:
    code = (
        "import importlib.metadata as m, platform\n"
        f"versions = [p + ' ' + m.version(p) for p in {LIBRARIES!r}]\n"
        "print('Python ' + platform.python_version(), *versions, sep=', ')"
    )
    python = project / ".venv" / "bin" / "python"
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


# ---------------------------------------------------------------------------- report


def load() -> str:
    """The 1/5/15-minute load averages: how busy the (shared) machine was."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def report(servers: dict[str, Server], args: argparse.Namespace) -> None:
    medians = {
        name: statistics.median(s.rps for s in server.samples) for name, server in servers.items()
    }
    bare = medians["bare"]
    print()
    header = (
        f"{'server':<10}{'req/s':>9}{'min-max req/s':>17}{'p99 ms':>9}"
        f"{'CPU us/req':>12}{'vs bare':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, server in servers.items():
        samples = server.samples
        spread = f"{min(s.rps for s in samples):.0f}-{max(s.rps for s in samples):.0f}"
        p99 = statistics.median(s.p99_ms for s in samples)
        cpu = statistics.median(s.cpu_us_per_request for s in samples)
        ratio = medians[name] / bare
        print(f"{name:<10}{medians[name]:>9.0f}{spread:>17}{p99:>9.2f}{cpu:>12.1f}{ratio:>9.2f}")
    print("-" * len(header))
    print("req/s, p99 and CPU us/req are medians over the rounds; CPU is the server process's own.")
    for name in ("hardened", "basehttp"):
        paired = [
            a.rps / b.rps
            for a, b in zip(servers[name].samples, servers["bare"].samples, strict=True)
        ]
        rounds = ", ".join(f"{r:.2f}" for r in paired)
        print(f"  {name}/bare per round: {rounds} (median {statistics.median(paired):.2f})")
    errors = [
        f"{name}: {s.errors}"
        for name, server in servers.items()
        for s in server.samples
        if s.errors
    ]
    if errors:
        print("  wrk reported errors: " + " | ".join(errors))
    for name in ("hardened", "basehttp"):
        server = servers[name]
        if server.log_lines:
            print(
                f"  {name}: {server.log_lines} access-log lines read from its pipe for "
                f"{server.requests_sent} requests wrk completed (+ probes, in-flight at stop)"
            )
    ratio = medians["hardened"] / bare
    print(f"  load average at the end: {load()}")
    print()
    print(f"hardened/bare = {ratio:.2f} (target >= {TARGET:.2f})")
    print(f"basehttp/bare = {medians['basehttp'] / bare:.2f} (reference)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not shutil.which("wrk") or not shutil.which("taskset"):
        raise SystemExit("throughput.py needs wrk and taskset on PATH")
    wanted = {int(c) for c in f"{args.server_cpu},{args.client_cpu}".split(",")}
    if not wanted <= os.sched_getaffinity(0):
        raise SystemExit(
            f"cores {sorted(wanted)} are not all available here: see --server-cpu/--client-cpu"
        )
    # This script (and the threads that read the servers' pipes) runs beside wrk, not the servers.
    os.sched_setaffinity(0, {int(c) for c in args.client_cpu.split(",")})

    now = datetime.datetime.now().astimezone()
    print(f"throughput: {now:%Y-%m-%d %H:%M %Z}, {os.cpu_count()} CPUs, load {load()}")
    with ExitStack() as stack:
        if not args.project:
            print(f"  {template_state()}")
        project = prepare_project(stack, args)
        slug = project_slug(project)
        print(f"  {library_versions(project)}")
        print(
            f"  uvicorn: 1 worker, uvloop + httptools, access_log=False, server_header=False, "
            f"proxy_headers=False; servers on core {args.server_cpu}, wrk on core {args.client_cpu}"
        )
        print(
            f"  wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency GET {PATH}; "
            f"{args.warmup}s warm-up each, then {args.rounds} interleaved rounds "
            f"(about {len(SERVERS) * (args.warmup + args.rounds * args.duration)}s)"
        )
        servers = start_servers(stack, project, slug, args)
        for server in servers.values():
            print(f"  {server.name:<9} pid {server.pid:<7} {server.service.url}  ({server.stdout})")

        interleaved_rounds(servers, PATH, args, with_p99=True)
        time.sleep(1)  # let the pipe readers catch up before the last count
        for server in servers.values():
            server.drain_log()
        report(servers, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
