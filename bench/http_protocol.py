"""Instructions per request of the service's HTTP protocol alone, counted by valgrind.

instructions.py counts a whole request through the booted service, about a minute per
server. This counts only the protocol, in process and in seconds: uvicorn's httptools
protocol and the generated `BoundedHttpToolsProtocol` (http_protocol.py, the bounds on each
request head) each parse a request on one kept-alive connection whose transport is a stub,
for an ASGI app that reads the body and answers. Two requests: instructions.py's probe (a
read that is one whole head, the protocol's fast path) and a log-in form POST whose head and
body come in one read (the general path: the head counted up to its blank line, the body fed
on its own). As in instructions.py, runs of N1 and N2 requests give
(Ir(N2) - Ir(N1)) / (N2 - N1); the difference between the two protocols is what the bounds
cost a request.

    .venv/bin/python bench/http_protocol.py [--project PATH] [--n1 1000] [--n2 6000]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FORM = b"username=someone&password=not-the-password"
REQUESTS = {
    "probe": b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n\r\n",
    "form": (
        b"POST /api/v1/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(FORM), FORM)
    ),
}
PROTOCOLS = ("uvicorn", "bounded")


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["method"] == "POST":
        while (await receive()).get("more_body"):
            pass
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


class StubTransport(asyncio.Transport):
    """Accepts and drops what the protocol writes."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def serve(protocol_class: type, request: bytes, count: int) -> None:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    config = Config(app, log_config=None)
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = StubTransport()
    protocol.connection_made(transport)
    for _ in range(count):
        protocol.data_received(request)
        while not protocol.cycle.response_complete:
            await asyncio.sleep(0)
        await asyncio.sleep(0)
    if transport.closing:
        raise RuntimeError("the protocol closed the connection")
    protocol.connection_lost(None)


def child(name: str, package: str, request: str, count: int) -> None:
    """Run in the project's interpreter: `count` requests through one protocol."""
    import uvloop

    if name == "uvicorn":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as protocol_class
    else:
        protocol_class = importlib.import_module(
            f"{package}.http_protocol"
        ).BoundedHttpToolsProtocol
    uvloop.run(serve(protocol_class, REQUESTS[request], count))


def child_command(python: str, name: str, package: str, request: str, count: int) -> list[str]:
    return [python, __file__, "--child", name, "--package", package, "--request", request,
            "--count", str(count)]  # fmt: skip


def instructions(command: list[str], env: dict[str, str]) -> int:
    valgrind = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
    ]
    result = subprocess.run([*valgrind, *command], env=env, capture_output=True, text=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", result.stderr)
    if result.returncode != 0 or not found:
        raise SystemExit(f"{' '.join(command[2:])} failed:\n{result.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a rendered and installed default project")
    parser.add_argument("--n1", type=int, default=1000, help="requests of the short run")
    parser.add_argument("--n2", type=int, default=6000, help="requests of the long run")
    parser.add_argument("--child", choices=PROTOCOLS, help=argparse.SUPPRESS)
    parser.add_argument("--package", help=argparse.SUPPRESS)
    parser.add_argument("--request", choices=REQUESTS, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.package, args.request, args.count)
        return 0
    if not 0 < args.n1 < args.n2:
        parser.error("need 0 < --n1 < --n2")
    if not shutil.which("valgrind"):
        raise SystemExit("http_protocol.py needs valgrind (apt-get install valgrind)")
    sys.path.insert(0, str(ROOT / "tests"))
    import harness
    from throughput import project_slug

    with tempfile.TemporaryDirectory(prefix="chf-protocol-") as tmp:
        project = args.project
        if project is None:
            project = harness.install_default(Path(tmp) / "service")
        project = project.resolve()
        python = str(project / ".venv" / "bin" / "python")
        package = project_slug(project).replace("-", "_")
        # A private bytecode cache, filled by a first native run: no run compiles source.
        env = {
            **os.environ,
            "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache"),
            "PYTHONHASHSEED": "0",
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        runs = f"runs of {args.n1} and {args.n2}"
        print(f"http_protocol: {args.n2 - args.n1} requests ({runs}), in process")
        for request in REQUESTS:
            per_request = {}
            for name in PROTOCOLS:
                subprocess.run(
                    child_command(python, name, package, request, 10), env=env, check=True
                )
                first = instructions(child_command(python, name, package, request, args.n1), env)
                second = instructions(child_command(python, name, package, request, args.n2), env)
                per_request[name] = (second - first) / (args.n2 - args.n1)
                print(
                    f"  {request}, {name}: {per_request[name]:,.0f} instructions/request",
                    flush=True,
                )
            added = per_request["bounded"] - per_request["uvicorn"]
            print(f"  {request}: the bounds cost {added:+,.0f} instructions/request", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
