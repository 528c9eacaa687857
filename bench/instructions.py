"""Instructions per request of GET /health/live, end to end, counted by valgrind.

Wall-clock throughput on a shared machine moves by tens of percent from one run to the next
(see throughput.py, which measures it anyway). This script counts instead: each server of
throughput.py (same uvicorn settings, same interpreter) runs under `valgrind --tool=cachegrind`
and serves exactly N requests over one keep-alive connection; the run is done twice, with N1
and N2 requests, and (Ir(N2) - Ir(N1)) / (N2 - N1) is the user-space instructions one request
costs: HTTP parsing, the app, the log line, the response. Start-up and shutdown cancel out.
Kernel work (socket and pipe writes) is not counted. Two runs agree within 0.5%.

It is slow (valgrind runs Python about 50 times slower): about 2 minutes per server, two
servers at a time. Needs valgrind (apt-get install valgrind).

    .venv/bin/python bench/instructions.py [--project PATH] [--servers bare,hardened,basehttp]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))

import harness  # noqa: E402
from throughput import project_slug, reference_command  # noqa: E402

SERVERS = ("bare", "hardened", "basehttp")
REQUEST = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n\r\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a rendered and installed default project")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    parser.add_argument("--n1", type=int, default=300, help="requests of the short run")
    parser.add_argument("--n2", type=int, default=2300, help="requests of the long run")
    parser.add_argument("--parallel", type=int, default=2, help="servers measured at once")
    parser.add_argument(
        "--ablations",
        action="store_true",
        help="also the generated routes behind one layer at a time (ablations.py; ~10 min more)",
    )
    args = parser.parse_args(argv)
    args.servers = [name for name in args.servers.split(",") if name]
    if unknown := set(args.servers) - set(SERVERS):
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    if not 0 < args.n1 < args.n2:
        parser.error("need 0 < --n1 < --n2")
    return args


async def _requests(port: int, count: int, request: bytes | None = None) -> None:
    """`count` requests (REQUEST unless another is given), one at a time on one connection:
    the same work in every run."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            writer.write(request or REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected response: {head!r}")
            length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
            await reader.readexactly(int(length.group(1)) if length else 0)
    finally:
        writer.close()


def _wait_ready(
    port: int, process: subprocess.Popen[bytes], request: bytes | None = None, timeout: float = 900
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            asyncio.run(_requests(port, 1, request))
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"server not ready within {timeout}s")


def _serve(
    command: list[str],
    env: dict[str, str],
    cwd: Path,
    count: int,
    prefix: list[str],
    request: bytes | None = None,
) -> bytes:
    port = harness.free_port()
    full = [*prefix, *(part.replace("{port}", str(port)) for part in command)]
    process = subprocess.Popen(
        full,
        cwd=cwd,
        env={**env, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _wait_ready(port, process, request)
        asyncio.run(_requests(port, count, request))
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=600)
        return stderr
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def instructions(
    name: str,
    command: list[str],
    env: dict[str, str],
    project: Path,
    args: argparse.Namespace,
    request: bytes | None = None,
) -> float:
    """Instructions of one request (REQUEST unless another is given) to the server `command`."""
    # A first native run puts every module in the bytecode cache, so neither valgrind run
    # compiles source (that would not cancel out).
    _serve(command, env, project, 50, [], request)
    counts = []
    for count in (args.n1, args.n2):
        stderr = _serve(
            command,
            env,
            project,
            count,
            ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"],
            request,
        )
        found = re.search(rb"I\s+refs:\s+([\d,]+)", stderr)
        if not found:
            raise RuntimeError(
                f"no instruction count from valgrind for {name}:\n{stderr.decode()[-2000:]}"
            )
        counts.append(int(found.group(1).replace(b",", b"")))
        print(f"  {name}: {count} requests, {counts[-1]:,} instructions in all", flush=True)
    return (counts[1] - counts[0]) / (args.n2 - args.n1)


def list_ablations(python: str, project: Path, env: dict[str, str]) -> dict[str, str]:
    """The factories of ablations.py for this project: {name: label}."""
    listing = subprocess.run(
        [python, str(BENCH / "ablations.py")], cwd=project, env=env, capture_output=True, text=True
    )
    if listing.returncode != 0:
        raise SystemExit(f"ablations.py failed in {project}:\n{listing.stderr}")
    return dict(line.split("\t", 1) for line in listing.stdout.splitlines() if "\t" in line)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not shutil.which("valgrind"):
        raise SystemExit("instructions.py needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="chf-instructions-") as tmp:
        project = args.project
        if project is None:
            project = harness.install_default(Path(tmp) / "service")
        project = project.resolve()
        # A private bytecode cache: the runs must not compile anything (see above).
        env = harness.service_env(port=8000)  # each run sets its own PORT
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update({"PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache"), "PYTHONHASHSEED": "0"})
        python = str(project / ".venv" / "bin" / "python")
        commands = {
            "bare": reference_command(project, "bare_app", "0")[3:],
            "hardened": [python, str(project / ".venv" / "bin" / project_slug(project)), "serve"],
            "basehttp": reference_command(project, "basehttp_app", "0")[3:],
        }
        names = list(args.servers)
        labels = list_ablations(python, project, env) if args.ablations else {}
        for name in labels:
            base = reference_command(project, "ablations", "0")[3:]
            commands[name] = [
                f"ablations:{name}" if part == "ablations:app" else part for part in base
            ] + ["--factory"]
            names.append(name)
        print(
            f"instructions: {args.n2 - args.n1} requests (runs of {args.n1} and {args.n2}), "
            "one keep-alive connection, valgrind cachegrind, user space only"
        )
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            futures = {
                name: pool.submit(instructions, name, commands[name], env, project, args)
                for name in names
            }
            results = {name: future.result() for name, future in futures.items()}

    print()
    print(f"{'server':<14}{'instructions/request':>22}{'bare/server':>13}")
    print("-" * 49)
    for name in args.servers:
        ratio = f"{results['bare'] / results[name]:.2f}" if "bare" in results else "-"
        print(f"{name:<14}{results[name]:>22,.0f}{ratio:>13}")
    print("-" * 49)
    print("bare/server: the throughput ratio if the server's core did nothing else.")
    if labels:
        routes = results["routes"]
        print()
        print("Ablations (ablations.py), instructions per request and the difference to routes:")
        if "bare" in results:
            bare = results["bare"]
            print(f"  {'bare FastAPI app':<58}{bare:>10,.0f}{bare - routes:>+10,.0f}")
        for name, label in labels.items():
            value = results[name]
            print(f"  {label:<58}{value:>10,.0f}{value - routes:>+10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
