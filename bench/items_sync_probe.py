"""What the authenticated page read would cost on the synchronous stack of FastAPI's SQL
tutorial: a synchronous SQLAlchemy engine on the stdlib `sqlite3` driver, the generated
route's Core query, in a plain `def` path operation that FastAPI runs in its thread pool (one
thread hop per request instead of aiosqlite's round trips to its thread). A measurement: the
template is not changed; the listing route is replaced in the measuring process only.

    .venv/bin/python bench/items_sync_probe.py [--project PATH] [--n1 100] [--n2 400]
        [--cases route-async,route-sync,query-async,query-sync,empty-async,empty-sync]

Renders and installs the default variant (SQLite, JWT, memory limiter, Prometheus) unless
`--project` gives one, migrates a database, and counts instructions with
`valgrind --tool=cachegrind` on N1 and N2 iterations of each case, `(Ir(N2) - Ir(N1)) / (N2 -
N1)`, in the generated project's interpreter, in process as `items_inprocess.py` does:

- route-async: `GET /api/v1/items` of the generated app as it is (`items_inprocess.py`);
- route-sync: the same app with the listing route replaced by a `def` route with the same
  path, dependencies (identity, rate limit), query parameters and answer model, reading
  through a synchronous engine (`sqlite:///` of the same file, the service's pragmas);
- route-inline: the same read in an `async def` route, on the event loop (no thread hop; it
  blocks the loop, so a floor, not a design);
- route-nodb: an `async def` route answering the page from rows read once (no database work
  per read): the floor of everything but the database;
- query-async / query-sync: the route's Core query alone, outside FastAPI, on a connection
  of the app's async engine (aiosqlite) / of the synchronous engine (`sqlite3`), rows fetched;
- empty-async / empty-sync: an `async def` / a `def` route returning None, with no
  dependency, added to the same app (middleware, access line and metrics as for any route):
  their difference is FastAPI's thread-pool hop.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CASES = (
    "route-async",
    "route-sync",
    "route-inline",
    "route-nodb",
    "query-async",
    "query-sync",
    "empty-async",
    "empty-sync",
)
NO_LIMIT = "1000000000/minute"


# --- in the generated project's interpreter --------------------------------------------------


def sync_engine() -> Any:
    from sqlalchemy import create_engine, event

    url = os.environ["DATABASE_URL"].replace("sqlite+aiosqlite:", "sqlite:", 1)
    # FastAPI's SQL tutorial: the connection is used from the thread pool's threads.
    engine = create_engine(url, connect_args={"check_same_thread": False})
    db = __import__(f"{package()}.db", fromlist=["_sqlite_pragmas"])
    event.listen(engine, "connect", db._sqlite_pragmas)
    return engine


def package() -> str:
    return next(p.name for p in (Path.cwd() / "src").iterdir() if (p / "main.py").exists())


def replace_listing(engine: Any, how: str) -> None:
    """Swap the generated `GET /api/v1/items` for a `def` route doing the same read on a
    synchronous connection; everything else about the route is kept. In the items router,
    before `create_app()` includes it (with the rate limit's dependency)."""
    from typing import Annotated

    from fastapi import APIRouter, Query
    from fastapi.routing import APIRoute
    from sqlalchemy import func, select

    items = __import__(f"{package()}.items", fromlist=["ItemPage"])
    models = __import__(f"{package()}.models", fromlist=["Item"])
    Item, ItemPage = models.Item, items.ItemPage

    def read(limit: int, offset: int) -> Any:
        counted = select(Item.__table__, func.count().over().label("total"))
        with engine.connect() as connection:
            query = counted.order_by(Item.id).limit(limit).offset(offset)
            rows = connection.execute(query).all()
            if rows:
                total = rows[0].total
            elif offset:
                total = connection.scalar(select(func.count()).select_from(Item)) or 0
            else:
                total = 0
        page = {"items": rows, "total": total, "limit": limit, "offset": offset}
        return ItemPage.model_validate(page, from_attributes=True)

    Limit = Annotated[int, Query(ge=1, le=100)]
    Offset = Annotated[int, Query(ge=0, le=1_000_000)]

    def list_items(limit: Limit = 20, offset: Offset = 0) -> Any:
        return read(limit, offset)

    async def list_items_inline(limit: Limit = 20, offset: Offset = 0) -> Any:
        return read(limit, offset)

    with engine.connect() as connection:  # the rows of the first page, read once
        kept = connection.execute(
            select(Item.__table__, func.count().over().label("total")).order_by(Item.id).limit(20)
        ).all()

    async def list_items_nodb(limit: Limit = 20, offset: Offset = 0) -> Any:
        page = {"items": kept, "total": 50, "limit": limit, "offset": offset}
        return ItemPage.model_validate(page, from_attributes=True)

    endpoint = {"sync": list_items, "inline": list_items_inline, "nodb": list_items_nodb}[how]
    listing = [
        index
        for index, route in enumerate(items.router.routes)
        if isinstance(route, APIRoute) and route.path == "/api/v1/items" and "GET" in route.methods
    ]
    if not listing:
        raise SystemExit("no GET /api/v1/items route in the app")
    index = listing[0]
    route = items.router.routes[index]
    scratch = APIRouter()
    scratch.add_api_route(
        route.path,
        endpoint,
        methods=["GET"],
        response_model=ItemPage,
        dependencies=route.dependencies,
        responses=route.responses,
        name=route.name,
    )
    items.router.routes[index] = scratch.routes[0]


def add_empty_routes(app: Any) -> None:
    async def empty_async() -> None:
        return None

    def empty_sync() -> None:
        return None

    app.add_api_route("/bench/empty-async", empty_async, methods=["GET"])
    app.add_api_route("/bench/empty-sync", empty_sync, methods=["GET"])


async def inner(case: str, n: int) -> None:
    import importlib

    sys.path.insert(0, str(BENCH))
    import items_inprocess as ip
    from sqlalchemy import func, select

    pkg = package()
    main = importlib.import_module(f"{pkg}.main")
    settings_module = importlib.import_module(f"{pkg}.settings")
    tokens = importlib.import_module(f"{pkg}.auth.tokens")
    models = importlib.import_module(f"{pkg}.models")
    Item = models.Item
    settings = settings_module.Settings()
    engine = sync_engine()
    if case in ("route-sync", "route-inline", "route-nodb"):
        replace_listing(engine, case.removeprefix("route-"))
    app = main.create_app(settings)
    viewer = tokens.issue_access_token(
        settings, await ip.bench_user(settings, "viewer"), ["viewer"]
    )
    editor = tokens.issue_access_token(
        settings, await ip.bench_user(settings, "editor"), ["editor"]
    )
    add_empty_routes(app)
    async with app.router.lifespan_context(app) as state:
        ip.STATE.update(state or {})
        status, _, body = await ip.call(app, "GET", "/api/v1/items", viewer)
        assert status == 200, body
        if b'"total":0' in body:
            for number in range(ip.ITEMS):
                item = f'{{"name": "item {number}", "description": "the item numbered {number}"}}'
                status, _, body = await ip.call(app, "POST", "/api/v1/items", editor, item.encode())
                assert status == 201, body
        if case in ("route-sync", "route-inline", "route-nodb"):
            status, headers, body = await ip.call(app, "GET", "/api/v1/items", viewer)
            assert status == 200 and body.count(b'"id":') == 20 and b'"total":50' in body, body
            assert any(name == b"ratelimit" for name, _ in headers), headers
            assert engine.pool.checkedin() == 1, "the page was not read by the replaced route"
        query = (
            select(Item.__table__, func.count().over().label("total"))
            .order_by(Item.id)
            .limit(20)
            .offset(0)
        )
        if case == "once":
            for path in ("/api/v1/items", "/bench/empty-async", "/bench/empty-sync"):
                print(path, await ip.call(app, "GET", path, viewer), file=sys.stderr)
            return
        if case.startswith("query-"):
            async_engine = app.state.engine

            async def query_async() -> None:
                async with async_engine.connect() as connection:
                    rows = (await connection.execute(query)).all()
                assert len(rows) == 20

            def query_sync() -> None:
                with engine.connect() as connection:
                    rows = connection.execute(query).all()
                assert len(rows) == 20

            for _ in range(20):
                await query_async() if case == "query-async" else query_sync()
            for _ in range(n):
                await query_async() if case == "query-async" else query_sync()
            return
        path = {
            "route-async": "/api/v1/items",
            "route-sync": "/api/v1/items",
            "route-inline": "/api/v1/items",
            "route-nodb": "/api/v1/items",
            "empty-async": "/bench/empty-async",
            "empty-sync": "/bench/empty-sync",
        }[case]
        for _ in range(20):  # warm-up: caches, pools, the thread pool's worker
            status, _, body = await ip.call(app, "GET", path, viewer)
            assert status == 200, body
        for _ in range(n):
            await ip.call(app, "GET", path, viewer)


def run_inner(case: str, n: int) -> None:
    import items_inprocess as ip

    ip.run_in_loop(inner(case, n))


# --- in the template's interpreter ------------------------------------------------------------


def prepare(project: Path | None, tmp: Path) -> tuple[Path, dict[str, str]]:
    sys.path.insert(0, str(ROOT / "tests"))
    import harness

    if project is None:
        started = time.monotonic()
        project = harness.install_default(tmp / "service")
        print(f"rendered and installed in {time.monotonic() - started:.0f}s", flush=True)
    env = harness.service_env(port=8000)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        {
            "PYTHONPYCACHEPREFIX": str(tmp / "pycache"),
            "PYTHONHASHSEED": "0",
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'items-sync.db'}",
            "JWT_SECRET_KEY": secrets.token_urlsafe(48),
            "RATE_LIMIT_AUTHENTICATED": NO_LIMIT,
            "RATE_LIMIT_DEFAULT": NO_LIMIT,
        }
    )
    with (project / "pyproject.toml").open("rb") as file:
        slug = next(iter(tomllib.load(file)["project"]["scripts"]))
    migrated = subprocess.run(
        [str(project / ".venv" / "bin" / slug), "migrate"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    if migrated.returncode != 0:
        raise SystemExit(f"migrate failed:\n{migrated.stdout}\n{migrated.stderr}")
    return project, env


def count(project: Path, env: dict[str, str], case: str, n: int) -> int:
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        str(project / ".venv" / "bin" / "python"),
        str(Path(__file__).resolve()),
        "--inner",
        case,
        str(n),
    ]
    result = subprocess.run(
        command,
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,  # the access lines
        stderr=subprocess.PIPE,
        text=True,
        timeout=1800,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", result.stderr)
    if result.returncode != 0 or not found:
        raise SystemExit(f"{case} {n} failed:\n{result.stderr[-3000:]}")
    return int(found.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--inner"]:
        run_inner(argv[1], int(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path)
    parser.add_argument("--n1", type=int, default=100)
    parser.add_argument("--n2", type=int, default=400)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args(argv)
    cases = args.cases.split(",")
    with tempfile.TemporaryDirectory(prefix="items-sync-") as name:
        tmp = Path(name)
        project, env = prepare(args.project, tmp)
        python = str(project / ".venv" / "bin" / "python")
        # Native runs first: the bytecode cache is filled and the table seeded.
        subprocess.run(
            [python, str(Path(__file__).resolve()), "--inner", "once", "1"],
            cwd=project,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for case in cases:
            subprocess.run(
                [python, str(Path(__file__).resolve()), "--inner", case, "1"],
                cwd=project,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        jobs = [(case, n) for case in cases for n in (args.n1, args.n2)]
        started = time.monotonic()
        with ThreadPoolExecutor(args.parallel) as pool:
            counts = dict(
                zip(jobs, pool.map(lambda job: count(project, env, *job), jobs), strict=True)
            )
        print(f"valgrind runs took {time.monotonic() - started:.0f}s")
        per = {
            case: (counts[case, args.n2] - counts[case, args.n1]) / (args.n2 - args.n1)
            for case in cases
        }
        for case in cases:
            print(f"{case:12} {per[case]:>12,.0f} instructions per iteration")
        for a, b in (("route", "route"), ("query", "query"), ("empty", "empty")):
            if f"{a}-async" in per and f"{b}-sync" in per:
                diff = per[f"{b}-sync"] - per[f"{a}-async"]
                print(f"{a}: sync - async {diff:+,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
