#!/usr/bin/env python3
"""Entry point of the template's own development: needs only Python 3.11+ and git.

    python3 dev.py demo     generate the default service into ./my-service and boot it
    python3 dev.py test     run the whole test suite (extra arguments go to pytest)
    python3 dev.py bench    run the benchmarks under bench/ (or: bench NAME ARGS, NAME one of them)
    python3 dev.py render-all DIR
                            render every declared variant into DIR/<variant id>, so linters,
                            duplicate checks and readers can look at real files

The first run creates .venv with the pinned tools (uv, copier, pytest, ruff, mypy, ...).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
UV_VERSION = "0.13.9"
# Where `demo` generates the service (DEV_DEMO_DIR overrides it, for the quickstart's test).
DEMO = Path(os.environ.get("DEV_DEMO_DIR", ROOT / "my-service")).resolve()


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def call(*args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> int:
    return subprocess.call([str(arg) for arg in args], cwd=cwd, env=env)


def check(*args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
    code = call(*args, cwd=cwd, env=env)
    if code != 0:
        sys.exit(f"dev.py: {' '.join(map(str, args))} failed with exit status {code}")


def bootstrap() -> None:
    """Create .venv with uv, then let uv install the locked dev dependencies into it."""
    if sys.version_info < (3, 11):  # noqa: UP036 (a clear message for older interpreters)
        sys.exit("dev.py: Python 3.11 or newer is needed")
    if shutil.which("git") is None:
        sys.exit("dev.py: git is needed (copier reads the template from this repository)")
    if not (BIN / "uv").exists():
        say("creating .venv and installing uv")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        check(
            BIN / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"uv=={UV_VERSION}",
        )
    say("syncing the template's dev dependencies (uv.lock)")
    check(BIN / "uv", "sync", "--frozen", "--quiet", "--python", BIN / "python")


def demo() -> int:
    sys.path.insert(0, str(ROOT / "tests"))
    from harness import find_python, render

    if DEMO.exists():
        say(f"{DEMO.name} exists: booting it as it is (delete it to generate it again)")
    else:
        say(f"generating the default service into {DEMO}")
        render(DEMO, {})
    say("installing it with uv")
    check(BIN / "uv", "sync", "--quiet", "--python", find_python("3.12"), cwd=DEMO)
    # The demo is the default service as generated: its own .env (SQLite in ./data), whatever
    # database the calling shell points DATABASE_URL at.
    env = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"}
    check(DEMO / ".venv" / "bin" / "my-service", "migrate", cwd=DEMO, env=env)
    say(
        f"uv is at {BIN / 'uv'} (the service's README says `uv ...`: use that path, or "
        "`pip install uv` to have it on PATH)"
    )
    port = os.environ.get("PORT", "8000")
    say(f"serving on http://127.0.0.1:{port} (docs: /docs); Ctrl+C stops it")
    return serve_until_stopped([str(DEMO / ".venv" / "bin" / "my-service"), "serve"], DEMO, env)


def serve_until_stopped(command: list[str], cwd: Path, env: dict[str, str]) -> int:
    """Run the server in the foreground; SIGTERM or SIGINT to this script stops it too, so no
    server is left running on the port after the demo ends."""
    server = subprocess.Popen(command, cwd=cwd, env=env)

    def forward(signum: int, _frame: object) -> None:
        if server.poll() is None:
            server.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward)
    return server.wait()


def test(extra: list[str]) -> int:
    say("running the test suite")
    args = (
        ["-n", "2", "--dist", "loadgroup", *extra]
        if not any(a.startswith("-n") for a in extra)
        else extra
    )
    if not any(a.startswith("--durations") for a in args):
        args.append("--durations=10")  # the slowest ten tests, printed after the run
    code = call(BIN / "pytest", *args)
    if code == 5:
        print("dev.py: pytest collected no tests: that is a failure", file=sys.stderr)
        return 1
    return code


# Every benchmark under bench/ (bench/README.md describes each), in the order `bench` runs them;
# items_inprocess.py runs in a generated project's interpreter, and ablations.py and the
# *_app.py files are modules the benchmarks load.
BENCHMARKS = {
    "render": "render_time.py",
    "items-read": "items_read.py",
    "throughput": "throughput.py",
    "instructions": "instructions.py",
    "http-protocol": "http_protocol.py",
    "items-sync": "items_sync_probe.py",
    "rate-limit": "rate_limit.py",
    "observability": "observability.py",
    "breakdown": "breakdown.py",
    "redis-limiter": "redis_limiter.py",
    "speedups": "speedups.py",
    "load-test": "load_test.py",
}


def bench(extra: list[str]) -> int:
    if extra and extra[0] in BENCHMARKS:
        return call(BIN / "python", ROOT / "bench" / BENCHMARKS[extra[0]], *extra[1:])
    if extra:
        print(
            f"dev.py bench: no benchmark {extra[0]!r}; one of {', '.join(BENCHMARKS)}",
            file=sys.stderr,
        )
        return 2
    failed = []
    for name, script in BENCHMARKS.items():
        say(f"bench {name} ({script})")
        if call(BIN / "python", ROOT / "bench" / script):
            failed.append(name)
    if failed:
        print(f"dev.py bench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def render_all(extra: list[str]) -> int:
    if len(extra) != 1:
        print("usage: python3 dev.py render-all DIR", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT / "tests"))
    from harness import render_variants

    target = Path(extra[0]).resolve()
    for variant_id, path in render_variants(target):
        say(f"{variant_id}: {path}")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "bench", "render-all"}:
        print(__doc__, file=sys.stderr)
        return 2
    os.chdir(ROOT)
    if Path(sys.prefix).resolve() != VENV.resolve():
        bootstrap()
        # Continue inside .venv, where the template's tools and libraries are installed.
        os.execv(BIN / "python", [str(BIN / "python"), str(Path(__file__).resolve()), *argv])
    if argv[0] == "demo":
        return demo()
    if argv[0] == "bench":
        return bench(argv[1:])
    if argv[0] == "render-all":
        return render_all(argv[1:])
    return test(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
