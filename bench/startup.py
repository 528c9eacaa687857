"""Start-up of the generated service: importing and building the app, `serve` to ready, and
the memory of a multi-worker `serve`, beside bare FastAPI.

Start-up is what a scale-out, a crash restart and every command of the service's CLI pay.
Four measurements, each printed with its ratio to the reference measured in the same run:

- import + build: a fresh interpreter imports the app and builds it (`create_app()`; for
  bare FastAPI, `bench/bare_app.py`, whose import builds its one-route app). Counted by
  valgrind (`cachegrind`, whole process, interpreter start-up included: load-independent,
  two runs agree within 0.1%) and timed natively (median of `--rounds` interleaved rounds);
  subjects: bare FastAPI, the default answers, and every option on (the all-on-pg variant:
  PostgreSQL, JWT, Redis, Prometheus + OpenTelemetry + Sentry, backups, with an OTLP
  endpoint and a Sentry DSN set so that both are set up);
- serve to ready: from starting the process to the first 200 of `GET /health/ready` (bare
  FastAPI under uvicorn's CLI with the service's settings: its only route, `/health/live`),
  wall time, median of interleaved rounds;
- memory: `serve --workers 2` of the default answers, the RSS of the supervising process and
  of each worker once the service is ready (`/proc/PID/status`, VmRSS);
- the application environment of the image: what the Dockerfile's build stage installs
  (`uv sync --locked --no-dev --no-editable`, bytecode compiled) for the default answers,
  without and with the `s3` extra, in MB (`du -sm`).

Every project is installed as the image installs it (`uv sync --locked --no-dev`), with a
private bytecode cache filled by a first run (the image compiles bytecode at build time), and
runs Python 3.12 (the all-on-pg variant's 3.11 is replaced, so one interpreter serves all).

    .venv/bin/python bench/startup.py [--rounds 7] [--keep] [--project PATH] [--all-on PATH]
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
from throughput import load, project_slug, template_state  # noqa: E402
from variants import VARIANTS  # noqa: E402

TARGETS = {"default/bare import": 2.0, "all-on/bare import": 2.5, "default/bare ready": 1.5}
TARGET_SUPERVISOR_MB = 40
TARGET_ENVIRONMENT_MB = 90
PYTHON_VERSION = "3.12"
BUILD_SERVICE = "from {package}.main import create_app; create_app()"
BUILD_BARE = "import bare_app"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--project", type=Path, help="a rendered default project to reuse")
    parser.add_argument("--all-on", type=Path, help="a rendered all-on-pg project to reuse")
    parser.add_argument("--keep", action="store_true", help="keep the rendered projects")
    return parser.parse_args(argv)


def prepare(stack: ExitStack, args: argparse.Namespace) -> tuple[Path, Path]:
    tmp = Path(tempfile.mkdtemp(prefix="chf-startup-"))
    if args.keep:
        print(f"  projects kept under {tmp}")
    else:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
    all_on_answers = {
        **next(v for v in VARIANTS if v.id == "all-on-pg").answers,
        "python_version": PYTHON_VERSION,
    }
    projects = []
    for given, name, answers in (
        (args.project, "default", {}),
        (args.all_on, "all-on", all_on_answers),
    ):
        project = given.resolve() if given else tmp / name
        if not given:
            started = time.monotonic()
            harness.render(project, answers)
            print(f"  rendered {name} in {time.monotonic() - started:.0f}s")
        started = time.monotonic()
        subprocess.run(
            [harness.tool("uv"), "sync", "--quiet", "--locked", "--no-dev",
             "--python", harness.find_python(PYTHON_VERSION)],
            cwd=project, env=harness.uv_env(), check=True, timeout=900,
        )  # fmt: skip
        print(f"  installed {name} (no dev group) in {time.monotonic() - started:.0f}s")
        projects.append(project)
    return projects[0], projects[1]


def environment(
    project: Path, pycache: Path, extra: dict[str, str] | None = None
) -> dict[str, str]:
    env = harness.uv_env()
    env.update(
        {
            "APP_ENV": "development",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "warning",
            "JWT_SECRET_KEY": secrets.token_urlsafe(48),
            "BACKUP_SIGNING_KEY": secrets.token_urlsafe(48),
            "DATABASE_URL": f"sqlite:///{project / 'data' / 'startup.db'}",
            "PYTHONPYCACHEPREFIX": str(pycache),
            "PYTHONPATH": str(BENCH),
        }
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra or {})
    return env


def instructions(command: list[str], env: dict[str, str], cwd: Path) -> int:
    result = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         *command],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    found = re.search(r"I\s+refs:\s+([\d,]+)", result.stderr)
    if result.returncode != 0 or not found:
        raise RuntimeError(f"{command} under valgrind failed:\n{result.stderr[-3000:]}")
    return int(found.group(1).replace(",", ""))


def wall(command: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - started


def http_status(port: int, path: str) -> int | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            head = sock.recv(64)
    except OSError:
        return None
    found = re.match(rb"HTTP/1\.1 (\d{3})", head)
    return int(found.group(1)) if found else None


def wait_ok(port: int, path: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        if http_status(port, path) == 200:
            return
        time.sleep(0.005)
    raise RuntimeError(f"no 200 on {path} within {timeout}s")


def start(
    command: list[str], env: dict[str, str], cwd: Path
) -> tuple[subprocess.Popen[bytes], int]:
    port = harness.free_port()
    process = subprocess.Popen(
        [part.replace("{port}", str(port)) for part in command],
        cwd=cwd,
        env={**env, "PORT": str(port), "HOST": "127.0.0.1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return process, port


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as a container runtime stops it (the service removes its metrics directory);
    SIGKILL after 60 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def ready_time(command: list[str], path: str, env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    process, port = start(command, env, cwd)
    try:
        wait_ok(port, path, process)
        return time.perf_counter() - started
    finally:
        stop(process)


def environment_mb(project: Path, extras: list[str]) -> int:
    """The size of the image's application environment, installed as its build stage does."""
    with tempfile.TemporaryDirectory(prefix="chf-startup-env-") as target:
        env = {**harness.uv_env(), "UV_COMPILE_BYTECODE": "1", "UV_PROJECT_ENVIRONMENT": target}
        subprocess.run(
            [harness.tool("uv"), "sync", "--quiet", "--locked", "--no-dev", "--no-editable",
             *(f"--extra={extra}" for extra in extras),
             "--python", harness.find_python(PYTHON_VERSION)],
            cwd=project, env=env, check=True, timeout=900,
        )  # fmt: skip
        du = subprocess.run(["du", "-sm", target], capture_output=True, text=True, check=True)
        return int(du.stdout.split()[0])


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(found.group(1)) / 1024 if found else 0.0


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def worker_memory(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, list[float]]:
    process, port = start(command, env, cwd)
    try:
        wait_ok(port, "/health/ready", process)
        deadline = time.monotonic() + 30
        while True:  # both workers up: each answers once it has imported and built the app
            workers = [
                child
                for child in children(process.pid)
                if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()
            ]
            if len(workers) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        time.sleep(3)  # let both finish their lifespans
        return rss_mb(process.pid), [rss_mb(worker) for worker in workers]
    finally:
        stop(process)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"startup: {now}, {os.cpu_count()} CPUs, load {load()}")
    print(f"  {template_state()}")
    with ExitStack() as stack:
        default, all_on = prepare(stack, args)
        pycache = Path(tempfile.mkdtemp(prefix="chf-startup-pyc-"))
        stack.callback(shutil.rmtree, pycache, ignore_errors=True)
        package = project_slug(default).replace("-", "_")
        python = str(default / ".venv" / "bin" / "python")
        sinks = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
            "SENTRY_DSN": "http://public@127.0.0.1:9/1",
            "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/startup",  # never connected
        }
        subjects = {
            "bare": ([python, "-c", BUILD_BARE], environment(default, pycache), default),
            "default": (
                [python, "-c", BUILD_SERVICE.format(package=package)],
                environment(default, pycache),
                default,
            ),
            "all-on": (
                [str(all_on / ".venv" / "bin" / "python"), "-c",
                 BUILD_SERVICE.format(package=package)],
                environment(all_on, pycache, sinks),
                all_on,
            ),
        }  # fmt: skip
        interpreter = [python, "-c", "pass"]
        for command, env, cwd in subjects.values():  # fill the bytecode cache
            subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
        (default / "data").mkdir(exist_ok=True)

        print("\nimport + build (valgrind instructions, whole process)")
        counts = {"interpreter": instructions(interpreter, subjects["bare"][1], default)}
        for name, (command, env, cwd) in subjects.items():
            counts[name] = instructions(command, env, cwd)
        for name, count in counts.items():
            print(f"  {name:12} {count / 1e9:6.3f}G")

        print(f"\nimport + build (wall time, median of {args.rounds} interleaved rounds)")
        times: dict[str, list[float]] = {name: [] for name in subjects}
        order = list(subjects)
        for round_ in range(args.rounds):
            for name in order[round_ % 3 :] + order[: round_ % 3]:
                command, env, cwd = subjects[name]
                times[name].append(wall(command, env, cwd))
        medians = {name: statistics.median(values) for name, values in times.items()}
        for name, value in medians.items():
            low, high = min(times[name]), max(times[name])
            print(f"  {name:12} {value * 1000:6.0f} ms   ({low * 1000:.0f}-{high * 1000:.0f})")

        print(f"\nserve to the first 200 (wall time, median of {args.rounds} interleaved rounds)")
        slug = project_slug(default)
        serve_env = environment(default, pycache, {"WORKERS": "1"})
        subprocess.run(
            [str(default / ".venv" / "bin" / slug), "migrate"],
            cwd=default, env=serve_env, check=True, capture_output=True,
        )  # fmt: skip
        servers = {
            "bare": (
                [python, "-m", "uvicorn", "--app-dir", str(BENCH), "bare_app:app",
                 "--host", "127.0.0.1", "--port", "{port}", "--workers", "1",
                 "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                 "--no-server-header", "--no-proxy-headers", "--timeout-keep-alive", "5",
                 "--log-level", "warning"],
                "/health/live",
            ),
            "default": ([str(default / ".venv" / "bin" / slug), "serve"], "/health/ready"),
        }  # fmt: skip
        ready: dict[str, list[float]] = {name: [] for name in servers}
        for command, path in servers.values():  # warm-up
            ready_time(command, path, serve_env, default)
        for round_ in range(args.rounds):
            for name in list(servers)[round_ % 2 :] + list(servers)[: round_ % 2]:
                command, path = servers[name]
                ready[name].append(ready_time(command, path, serve_env, default))
        ready_medians = {name: statistics.median(values) for name, values in ready.items()}
        for name, value in ready_medians.items():
            low, high = min(ready[name]), max(ready[name])
            print(f"  {name:12} {value * 1000:6.0f} ms   ({low * 1000:.0f}-{high * 1000:.0f})")

        print("\nmemory of `serve --workers 2` (RSS once ready)")
        supervisor, workers = worker_memory(
            [str(default / ".venv" / "bin" / slug), "serve", "--workers", "2"],
            serve_env,
            default,
        )
        print(f"  supervisor   {supervisor:6.1f} MB")
        for number, worker in enumerate(workers, 1):
            print(f"  worker {number}     {worker:6.1f} MB")

        print("\napplication environment of the image, default answers (du -sm)")
        sizes = {
            "no extra": environment_mb(default, []),
            "s3 extra": environment_mb(default, ["s3"]),
        }
        for name, size in sizes.items():
            print(f"  {name:12} {size:6d} MB")

        net = {name: counts[name] - counts["interpreter"] for name in subjects}
        print("\nratios (this run)")
        ratios = {
            "default/bare import": counts["default"] / counts["bare"],
            "all-on/bare import": counts["all-on"] / counts["bare"],
            "default/bare ready": ready_medians["default"] / ready_medians["bare"],
        }
        for name, ratio in ratios.items():
            print(f"  {name:22} {ratio:5.2f}  (target <= {TARGETS[name]})")
        print(
            f"  without the interpreter's own start-up: default/bare "
            f"{net['default'] / net['bare']:.2f}, all-on/bare {net['all-on'] / net['bare']:.2f}"
        )
        print(
            f"  import time default/bare {medians['default'] / medians['bare']:.2f}, "
            f"all-on/bare {medians['all-on'] / medians['bare']:.2f}"
        )
        print(f"  supervisor RSS {supervisor:.1f} MB (target <= {TARGET_SUPERVISOR_MB})")
        print(
            f"  application environment {sizes['no extra']} MB (target <= {TARGET_ENVIRONMENT_MB})"
        )
        print(f"  load at the end {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
