"""The authenticated page read (`GET /api/v1/items` with a JWT) in process: no server, no
sockets, no HTTP parsing, so a change to the route, its dependencies or the database code
can be measured in seconds.

Runs in the generated project's interpreter (`<project>/.venv/bin/python`), from the project
directory, with the service's environment (DATABASE_URL of a database `migrate` prepared):
seeds 50 items as an editor when the table is empty, then calls `create_app()` directly with
a uvicorn-like scope for the first page (20 items) with a viewer's token, on an uvloop loop.

    python bench/items_inprocess.py count N      N reads (for valgrind: run N1 and N2,
                                                  the difference divided by N2 - N1)
    python bench/items_inprocess.py profile N    N reads under cProfile: calls per read and
                                                  the share of each library's own time
    python bench/items_inprocess.py once          one read, its status, headers and body

Valgrind, per read: `valgrind --tool=cachegrind --cache-sim=no` on `count 100` and
`count 400`, `(Ir(400) - Ir(100)) / 300`. A source tree first on PYTHONPATH measures a
variant of the code against the same installed libraries.
"""

from __future__ import annotations

import asyncio
import cProfile
import importlib
import os
import pstats
import secrets
import sys
from collections import defaultdict
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

ITEMS = 50


def package() -> str:
    return next(p.name for p in (Path.cwd() / "src").iterdir() if (p / "main.py").exists())


async def call(
    app: Any, method: str, path: str, token: str, body: bytes = b""
) -> tuple[int, list[Any], bytes]:
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"bench"),
        (b"authorization", f"Bearer {token}".encode()),
    ]
    if body:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 40000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "state": dict(STATE),
    }
    sent: list[dict[str, Any]] = []
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            await asyncio.Event().wait()
        received = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    return start["status"], start["headers"], b"".join(m.get("body", b"") for m in sent[1:])


STATE: dict[str, Any] = {}


async def bench_user(settings: Any, role: str) -> int:
    """A new user with `role` (an access token is accepted only while its user is active)."""
    users = importlib.import_module(f"{package()}.auth.users")
    name = f"bench-{role}-{secrets.token_hex(4)}"
    user_id: int = await users.create_user(settings, name, "a bench password, long enough", role)
    return user_id


async def run(mode: str, n: int) -> None:
    pkg = package()
    main = importlib.import_module(f"{pkg}.main")
    settings_module = importlib.import_module(f"{pkg}.settings")
    tokens = importlib.import_module(f"{pkg}.auth.tokens")
    settings = settings_module.Settings()
    app = main.create_app(settings)
    viewer = tokens.issue_access_token(settings, await bench_user(settings, "viewer"), ["viewer"])
    editor = tokens.issue_access_token(settings, await bench_user(settings, "editor"), ["editor"])
    async with app.router.lifespan_context(app) as state:
        STATE.update(state or {})
        status, _, body = await call(app, "GET", "/api/v1/items", viewer)
        assert status == 200, body
        if b'"total":0' in body:
            for number in range(ITEMS):
                item = f'{{"name": "item {number}", "description": "the item numbered {number}"}}'
                status, _, body = await call(app, "POST", "/api/v1/items", editor, item.encode())
                assert status == 201, body
        if mode == "once":
            status, headers, body = await call(app, "GET", "/api/v1/items", viewer)
            print(status, headers, body.decode(), sep="\n", file=sys.stderr)
            return
        for _ in range(20):  # warm-up: caches, pool
            await call(app, "GET", "/api/v1/items", viewer)
        if mode == "count":
            path = os.environ.get("BENCH_PATH", "/api/v1/items")
            for _ in range(n):
                await call(app, "GET", path, viewer)
            return
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(n):
            await call(app, "GET", "/api/v1/items", viewer)
        profile.disable()
        report(profile, n)


def report(profile: cProfile.Profile, n: int) -> None:
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    by_lib: dict[str, float] = defaultdict(float)
    calls_by_lib: dict[str, int] = defaultdict(int)
    total_calls = 0
    total_time = 0.0
    for (filename, _line, name), (_cc, nc, tt, _ct, _callers) in stats.items():
        if "site-packages/" in filename:
            lib = filename.split("site-packages/")[1].split("/")[0]
        elif "/src/" in filename:
            lib = "generated: " + filename.split("/src/")[1]
        elif filename == "~":
            lib = "builtin: " + name.split(" of ")[-1][:40]
        else:
            lib = "stdlib: " + Path(filename).name
        by_lib[lib] += tt
        calls_by_lib[lib] += nc
        total_calls += nc
        total_time += tt
    print(f"calls per read: {total_calls / n:,.0f}", file=sys.stderr)
    for lib, tt in sorted(by_lib.items(), key=lambda kv: -kv[1])[:40]:
        print(f"{tt / total_time:7.1%} {calls_by_lib[lib] / n:8.0f} calls  {lib}", file=sys.stderr)


def run_in_loop(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` on the loop `serve` uses (uvloop when installed), with the generated
    project's sources (the working directory's src/) importable."""
    sys.path.append(str(Path.cwd() / "src"))
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(work)


def main() -> None:
    mode = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    run_in_loop(run(mode, n))


if __name__ == "__main__":
    main()
