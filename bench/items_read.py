"""Instructions per request and throughput of an authenticated page read: GET /api/v1/items.

The realistic benchmark beside the probe one (instructions.py, throughput.py): a caller with a
JWT access token reads a page of items (the route's default page, 20 of 50 seeded rows) from
the database. Two servers per database, one uvicorn worker each, the settings of
throughput.py, the interpreter and libraries of the generated project's `.venv`:

- plain:     bench/plain_items_app.py, the same read written the way the FastAPI and
             SQLAlchemy tutorials write it (async ORM session, one `jwt.decode`, a pydantic
             response model, no hardening);
- generated: the generated service's own `<slug> serve` (JSON access log, rate limiter with
             a limit no request reaches, Prometheus metrics: everything the variant has).

Databases: sqlite (the default answers: SQLite, JWT, memory limiter, Prometheus) and
postgresql (the same with `database=postgresql`, in a database of its own that this script
creates on the server of `--pg-url` and drops afterwards).

Instructions: as instructions.py (whose machinery this script uses), each server runs under
`valgrind --tool=cachegrind` twice and serves N1, then N2 requests one at a time on one
keep-alive connection: (Ir(N2) - Ir(N1)) / (N2 - N1). Exact and repeatable, user space only
(the database server's own work is not counted). Throughput: wrk with the bearer token,
servers pinned to one core and wrk to the other, interleaved rounds, median req/s. It prints
the ratios measured in this run and asserts nothing about time.

    .venv/bin/python bench/items_read.py [--project PATH] [--pg-project PATH]
        [--databases sqlite,postgresql] [--n1 100] [--n2 400] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import datetime
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
import instructions  # noqa: E402
from throughput import (  # noqa: E402
    Sample,
    library_versions,
    load,
    pin,
    project_slug,
    reference_command,
    run_wrk,
    template_state,
)

PATH = "/api/v1/items"
DATABASES = {"sqlite": {}, "postgresql": {"database": "postgresql", "auth": "jwt"}}
SERVERS = ("plain", "generated")
TARGET_RATIO = 0.90  # plain/generated instructions
TARGET_INSTRUCTIONS = 3_500_000  # per request, default variant
PAGE = 20  # the generated route's default `limit`
ISSUER = AUDIENCE = "items-bench"
# The generated service's limiter stays on (each request pays for its hit), but admits all.
NO_LIMIT = "1000000000/minute"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--project", type=Path, help="a rendered and installed default project (sqlite)"
    )
    parser.add_argument(
        "--pg-project",
        type=Path,
        help="a rendered and installed project with database=postgresql, auth=jwt",
    )
    parser.add_argument(
        "--databases", default=",".join(DATABASES), help="comma-separated subset (default: both)"
    )
    parser.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="a PostgreSQL database to connect to; the benchmark creates its own beside it",
    )
    parser.add_argument("--items", type=int, default=50, help="rows seeded (default: 50)")
    parser.add_argument("--n1", type=int, default=100, help="requests of the short valgrind run")
    parser.add_argument("--n2", type=int, default=400, help="requests of the long valgrind run")
    parser.add_argument("--parallel", type=int, default=2, help="servers under valgrind at once")
    parser.add_argument("--skip-instructions", action="store_true", help="no valgrind runs")
    parser.add_argument("--skip-throughput", action="store_true", help="no wrk runs")
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="measured wrk rounds per server")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--warmup", type=int, default=2, help="untimed wrk seconds per server")
    parser.add_argument("--server-cpu", default="0", help="core for the servers (default: 0)")
    parser.add_argument("--client-cpu", default="1", help="core for wrk (default: 1)")
    parser.add_argument(
        "--callgrind",
        type=Path,
        metavar="DIR",
        help="also write one callgrind profile per server (N2 requests) into DIR",
    )
    args = parser.parse_args(argv)
    args.databases = [name for name in args.databases.split(",") if name]
    if unknown := set(args.databases) - set(DATABASES):
        parser.error(f"unknown databases: {', '.join(sorted(unknown))}")
    if not 0 < args.n1 < args.n2:
        parser.error("need 0 < --n1 < --n2")
    if args.items < PAGE:
        parser.error(f"--items must be at least {PAGE} (one full page)")
    return args


# ---------------------------------------------------------------------------- setup


SEED = """
import asyncio, datetime, sys
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

async def seed(url, count):
    engine = create_async_engine(url)
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    rows = [
        {
            "name": f"item {n}",
            "description": f"the description of item {n}" if n % 3 else None,
            "created_at": start + datetime.timedelta(minutes=n),
            "updated_at": start + datetime.timedelta(minutes=n, seconds=30),
        }
        for n in range(count)
    ]
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM items"))
        await connection.execute(
            text(
                "INSERT INTO items (name, description, created_at, updated_at) "
                "VALUES (:name, :description, :created_at, :updated_at)"
            ),
            rows,
        )
    await engine.dispose()

asyncio.run(seed(sys.argv[1], int(sys.argv[2])))
"""

# Signed with PyJWT, which the plain app reads tokens with (the generated service reads them
# with joserfc; both verify the same HS256 JWS).
TOKEN = """
import secrets, sys, time
import jwt
now = int(time.time())
claims = {
    "iss": sys.argv[2], "aud": sys.argv[2], "sub": sys.argv[3], "iat": now, "nbf": now,
    "exp": now + 7 * 86400, "jti": secrets.token_hex(16), "roles": ["viewer"],
}
print(jwt.encode(claims, sys.argv[1], algorithm="HS256", headers={"typ": "at+jwt"}))
"""
# The plain app's JWT library, added to the generated project's environment when it lacks it.
PLAIN_APP_LIBRARY = "pyjwt>=2.10,<3"


@dataclass
class Target:
    """One database: its project, its environment, the commands of its two servers."""

    database: str
    project: Path
    env: dict[str, str]
    token: str
    results: dict[str, float] = field(default_factory=dict)
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    @property
    def python(self) -> str:
        return str(self.project / ".venv" / "bin" / "python")

    def command(self, server: str, cpu: str | None = None) -> list[str]:
        if server == "plain":
            command = reference_command(self.project, "plain_items_app", cpu or "0")
            return command if cpu else command[3:]
        script = str(self.project / ".venv" / "bin" / project_slug(self.project))
        command = [self.python, script, "serve"]
        return ["taskset", "-c", cpu, *command] if cpu else command


def prepare_project(database: str, given: Path | None, tmp: Path) -> Path:
    if given:
        project = given.resolve()
        if not (project / ".venv" / "bin" / "python").exists():
            raise SystemExit(f"{project} has no .venv: render and install it first")
        return project
    project = tmp / f"service-{database}"
    started = time.monotonic()
    harness.render(project, DATABASES[database])
    harness.install(project, str(harness.copier_questions()["python_version"]["default"]))
    print(f"  {database}: rendered and installed in {time.monotonic() - started:.0f}s")
    return project


def pg_database(stack: ExitStack, admin_url: str) -> str:
    """Create a database of our own next to `admin_url`'s; drop it on the way out."""
    name = f"chf_items_bench_{os.getpid()}"
    psql = shutil.which("psql")
    if not psql:
        raise SystemExit("the postgresql run needs psql (apt-get install postgresql-client)")

    def sql(statement: str) -> None:
        subprocess.run(
            [psql, admin_url, "-v", "ON_ERROR_STOP=1", "-q", "-c", statement],
            check=True,
            capture_output=True,
        )

    sql(f"CREATE DATABASE {name}")
    stack.callback(sql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(scheme="postgresql+asyncpg", path=f"/{name}"))


def prepare_target(
    stack: ExitStack, database: str, project: Path, tmp: Path, args: argparse.Namespace
) -> Target:
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'items-bench.db'}"
    else:
        url = pg_database(stack, args.pg_url)
    secret = secrets.token_urlsafe(48)
    env = harness.service_env(port=8000)  # each run sets its own PORT
    # A private bytecode cache (see instructions.py): no valgrind run compiles source.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        {
            "PYTHONPYCACHEPREFIX": str(tmp / "pycache"),
            "PYTHONHASHSEED": "0",
            "DATABASE_URL": url,
            "JWT_SECRET_KEY": secret,
            "JWT_ISSUER": ISSUER,
            "JWT_AUDIENCE": AUDIENCE,
            "RATE_LIMIT_AUTHENTICATED": NO_LIMIT,
            "RATE_LIMIT_DEFAULT": NO_LIMIT,
        }
    )
    slug = project_slug(project)
    migrated = harness.run(project, slug, "migrate", env=env)
    if migrated.returncode != 0:
        raise SystemExit(f"{slug} migrate failed:\n{migrated.stdout}\n{migrated.stderr}")
    python = str(project / ".venv" / "bin" / "python")
    if subprocess.run([python, "-c", "import jwt"], capture_output=True).returncode != 0:
        subprocess.run(
            [harness.tool("uv"), "pip", "install", "--quiet", "--python", python,
             PLAIN_APP_LIBRARY],
            check=True, env=harness.uv_env(),
        )  # fmt: skip
    subprocess.run([python, "-c", SEED, url, str(args.items)], check=True, env=env, cwd=project)
    # A token is accepted only while its user exists and is active.
    created = harness.run(
        project,
        slug,
        "create-user",
        "bench-viewer",
        "--role",
        "viewer",
        env=env,
        input="a bench password, long enough\n",
    )
    if created.returncode != 0:
        raise SystemExit(f"{slug} create-user failed:\n{created.stdout}\n{created.stderr}")
    user_id = created.stdout.split("(id ")[1].split(")")[0]
    token = subprocess.run(
        [python, "-c", TOKEN, secret, ISSUER, user_id],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Target(database, project, env, token)


def request_bytes(token: str) -> bytes:
    return (
        f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()


def check_page(target: Target, server: str, url: str) -> None:
    """The server answers the read with a full page of the seeded rows."""
    import httpx

    response = httpx.get(
        url + PATH, headers={"Authorization": f"Bearer {target.token}"}, timeout=30
    )
    body = response.json() if response.status_code == 200 else None
    if body is None or len(body["items"]) != PAGE or body["total"] < PAGE:
        raise SystemExit(
            f"{target.database} {server}: unexpected answer {response.status_code}: "
            f"{response.text[:500]}"
        )


# ---------------------------------------------------------------------------- throughput


def throughput(target: Target, args: argparse.Namespace) -> None:
    """Both servers up, pinned; a warm-up each, then rounds whose order alternates."""
    with ExitStack() as stack:
        services = {}
        for server in SERVERS:
            service = stack.enter_context(
                harness.running(
                    target.project,
                    target.command(server, args.server_cpu),
                    {k: v for k, v in target.env.items() if k != "PORT"},
                )
            )
            assert service.process is not None
            pin(service.process.pid, args.server_cpu)
            check_page(target, server, service.url)
            services[server] = service
        bearer = [f"Authorization: Bearer {target.token}"]
        for server, service in services.items():
            assert service.process is not None
            target.samples[server] = []
            if args.warmup:
                run_wrk(service.url + PATH, args, args.warmup, service.process.pid, bearer)
        for index in range(args.rounds):
            order = SERVERS if index % 2 == 0 else SERVERS[::-1]
            line = []
            for server in order:
                service = services[server]
                assert service.process is not None
                sample = run_wrk(
                    service.url + PATH, args, args.duration, service.process.pid, bearer
                )
                target.samples[server].append(sample)
                service.lines.clear()  # the access log read from the pipe: not kept
                line.append(f"{server} {sample.rps:.0f} req/s")
            print(f"  {target.database} round {index + 1}/{args.rounds}: " + ", ".join(line))


# ---------------------------------------------------------------------------- instructions


def callgrind(targets: list[Target], args: argparse.Namespace) -> None:
    args.callgrind.mkdir(parents=True, exist_ok=True)
    for target in targets:
        request = request_bytes(target.token)
        for server in SERVERS:
            out = args.callgrind / f"callgrind.{target.database}.{server}"
            prefix = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
            command = target.command(server)
            instructions._serve(command, target.env, target.project, args.n2, prefix, request)
            print(f"  callgrind profile of {target.database} {server}: {out}")


# ---------------------------------------------------------------------------- report


def report(targets: list[Target], args: argparse.Namespace) -> None:
    print()
    if not args.skip_instructions:
        header = f"{'database':<12}{'plain':>14}{'generated':>14}{'gen/plain':>11}{'plain/gen':>11}"
        print("instructions per request (valgrind, user space)")
        print(header)
        print("-" * len(header))
        for target in targets:
            plain, generated = target.results["plain"], target.results["generated"]
            print(
                f"{target.database:<12}{plain:>14,.0f}{generated:>14,.0f}"
                f"{generated / plain:>11.2f}{plain / generated:>11.2f}"
            )
        print("-" * len(header))
    if not args.skip_throughput:
        print()
        print("throughput (wrk, median req/s over the rounds)")
        header = f"{'database':<12}{'plain':>10}{'generated':>12}{'gen/plain':>11}   per round"
        print(header)
        print("-" * len(header))
        for target in targets:
            plain = statistics.median(s.rps for s in target.samples["plain"])
            generated = statistics.median(s.rps for s in target.samples["generated"])
            rounds = ", ".join(
                f"{g.rps / p.rps:.2f}"
                for p, g in zip(target.samples["plain"], target.samples["generated"], strict=True)
            )
            print(
                f"{target.database:<12}{plain:>10.0f}{generated:>12.0f}"
                f"{generated / plain:>11.2f}   {rounds}"
            )
        print("-" * len(header))
        errors = [
            f"{target.database} {server}: {s.errors}"
            for target in targets
            for server, samples in target.samples.items()
            for s in samples
            if s.errors
        ]
        if errors:
            print("  wrk reported errors: " + " | ".join(errors))
        print(f"  load average at the end: {load()}")
    print()
    for target in targets:
        if target.results:
            plain, generated = target.results["plain"], target.results["generated"]
            print(
                f"{target.database}: plain/generated instructions = {plain / generated:.2f} "
                f"(target >= {TARGET_RATIO:.2f}), generated {generated / 1e6:.2f} M/request"
                + (
                    f" (target <= {TARGET_INSTRUCTIONS / 1e6:.1f} M)"
                    if target.database == "sqlite"
                    else ""
                )
            )
        if target.samples:
            plain = statistics.median(s.rps for s in target.samples["plain"])
            generated = statistics.median(s.rps for s in target.samples["generated"])
            print(f"{target.database}: generated/plain req/s = {generated / plain:.2f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.skip_instructions and not shutil.which("valgrind"):
        raise SystemExit("items_read.py needs valgrind (apt-get install valgrind)")
    if not args.skip_throughput and not (shutil.which("wrk") and shutil.which("taskset")):
        raise SystemExit("items_read.py needs wrk and taskset (or --skip-throughput)")
    now = datetime.datetime.now().astimezone()
    print(f"items_read: {now:%Y-%m-%d %H:%M %Z}, {os.cpu_count()} CPUs, load {load()}")
    print(f"  {template_state()}")
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="chf-items-read-"))
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        given = {"sqlite": args.project, "postgresql": args.pg_project}
        targets = []
        for database in args.databases:
            project = prepare_project(database, given[database], tmp)
            target = prepare_target(stack, database, project, tmp / database, args)
            targets.append(target)
            print(f"  {database}: {library_versions(project)}")
        print(
            f"  GET {PATH} with a JWT bearer token: a page of {PAGE} of {args.items} rows; "
            "uvicorn: 1 worker, uvloop + httptools, no access log, no server header"
        )
        if not args.skip_throughput:
            print(
                f"  wrk -t1 -c{args.connections} -d{args.duration}s, {args.warmup}s warm-up, "
                f"{args.rounds} rounds; servers on core {args.server_cpu}, wrk on core "
                f"{args.client_cpu}"
            )
            os.sched_setaffinity(0, {int(c) for c in args.client_cpu.split(",")})
            for target in targets:
                throughput(target, args)
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        if not args.skip_instructions:
            print(
                f"  instructions: {args.n2 - args.n1} requests (runs of {args.n1} and "
                f"{args.n2}), one keep-alive connection, valgrind cachegrind"
            )
            for target in targets:
                request = request_bytes(target.token)
                with ThreadPoolExecutor(max_workers=args.parallel) as pool:
                    futures = {
                        server: pool.submit(
                            instructions.instructions,
                            f"{target.database} {server}",
                            target.command(server),
                            target.env,
                            target.project,
                            args,
                            request,
                        )
                        for server in SERVERS
                    }
                    target.results = {name: f.result() for name, f in futures.items()}
        if args.callgrind:
            callgrind(targets, args)
        report(targets, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
