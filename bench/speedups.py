"""Instructions per authenticated page read, to judge a speed-up in the generated code.

The rule of the template README: generated code uses libraries through their ordinary API,
and a construct that departs from it stays only if it saves at least 3% of the instructions
of an authenticated read of a page of items. This script counts them for one or more
versions of the default service's code, all run by one installed project:

- `GET /api/v1/items` (a page of 20 of 50 items, read from SQLite) with
  `Authorization: Bearer <access token>` of a viewer, or `--path live` for the probe;
- each version is the project's own `src/`, or a source tree given with `--source NAME=DIR`
  (put first on `PYTHONPATH`, so it shadows the installed package), or the template at a git
  revision, rendered with the default answers, given with `--rev NAME=REV`;
- each runs under `valgrind --tool=cachegrind` as in `instructions.py`: two runs of N1 and N2
  requests, one at a time on one keep-alive connection; per request (Ir(N2) - Ir(N1)) / (N2 - N1).

The first version is the reference: every other one is printed with its difference to it, as
a share of the reference's instructions. To judge a construct, give the current code first
and the version written with the ordinary API second; the share is what the construct saves.

    .venv/bin/python bench/speedups.py [--project PATH] [--rev current=HEAD]
        [--source ordinary=/tmp/ordinary/src] [--path items|live] [--n1 50] [--n2 350]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))

import harness  # noqa: E402
from instructions import instructions  # noqa: E402
from throughput import project_slug  # noqa: E402

PATHS = {"items": "/api/v1/items", "live": "/health/live"}
PASSWORD = "bench-password-0123456789"
ITEMS = 50


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a rendered and installed default project")
    parser.add_argument("--source", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--rev", action="append", default=[], metavar="NAME=REV")
    parser.add_argument("--path", choices=sorted(PATHS), default="items")
    parser.add_argument("--n1", type=int, default=50, help="requests of the short run")
    parser.add_argument("--n2", type=int, default=350, help="requests of the long run")
    parser.add_argument("--parallel", type=int, default=2, help="versions measured at once")
    args = parser.parse_args(argv)
    if not 0 < args.n1 < args.n2:
        parser.error("need 0 < --n1 < --n2")
    for given in (*args.source, *args.rev):
        if "=" not in given:
            parser.error(f"{given!r}: expected NAME=VALUE")
    return args


def render_revision(revision: str, dest: Path) -> Path:
    """The `src/` of the template at `revision`, rendered with the default answers."""
    template = dest / "template"
    template.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(template)], input=archive.stdout, check=True)
    project = dest / "service"
    command = [harness.tool("copier"), "copy", "--trust", "--defaults", "--quiet"]
    subprocess.run(
        [*command, str(template), str(project)],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return project / "src"


def prepare(project: Path, slug: str, env: dict[str, str]) -> str:
    """Migrate, add a viewer and an editor, seed the items; the viewer's access token."""
    cli = str(project / ".venv" / "bin" / slug)
    commands = [([cli, "migrate"], "")]
    for role in ("viewer", "editor"):
        commands.append(([cli, "create-user", "--role", role, f"bench-{role}"], f"{PASSWORD}\n"))
    for command, given in commands:
        done = subprocess.run(
            command, cwd=project, env=env, input=given, text=True, capture_output=True
        )
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command[1:])} failed:\n{done.stdout}{done.stderr}")
    with harness.running(project, [cli, "serve"], env) as service:
        tokens = {}
        for role in ("viewer", "editor"):
            answer = httpx.post(
                f"{service.url}/api/v1/auth/token",
                data={"username": f"bench-{role}", "password": PASSWORD},
            )
            answer.raise_for_status()
            tokens[role] = answer.json()["access_token"]
        editor = {"Authorization": f"Bearer {tokens['editor']}"}
        for number in range(ITEMS):
            item = {"name": f"item {number}", "description": f"the item numbered {number}"}
            httpx.post(f"{service.url}/api/v1/items", json=item, headers=editor).raise_for_status()
        service.stop(signal.SIGINT)
    return tokens["viewer"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not shutil.which("valgrind"):
        raise SystemExit("speedups.py needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="chf-speedups-") as tmp:
        work = Path(tmp)
        project = args.project
        if project is None:
            project = harness.install_default(work / "service")
        project = project.resolve()
        slug = project_slug(project)
        sources: dict[str, Path | None] = {}
        for given in args.rev:
            name, revision = given.split("=", 1)
            sources[name] = render_revision(revision, work / "revisions" / name)
        for given in args.source:
            name, directory = given.split("=", 1)
            sources[name] = Path(directory).resolve()
        if not sources:
            sources["project"] = None

        env = harness.service_env(port=8000)
        for name in ("PORT", "PYTHONDONTWRITEBYTECODE"):  # each run sets its own port
            env.pop(name, None)
        env.update(
            {
                "PYTHONPYCACHEPREFIX": str(work / "pycache"),
                "PYTHONHASHSEED": "0",
                "DATABASE_URL": f"sqlite:///{work / 'bench.db'}",
                "ACCESS_TOKEN_MINUTES": "60",
                "RATE_LIMIT_DEFAULT": "1000000/minute",
                "RATE_LIMIT_AUTHENTICATED": "1000000/minute",
                "SHUTDOWN_DRAIN_SECONDS": "0",
            }
        )
        token = prepare(project, slug, env)
        path = PATHS[args.path]
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
        command = [str(project / ".venv" / "bin" / "python"), str(project / ".venv" / "bin" / slug)]
        command.append("serve")
        print(
            f"speedups: GET {path} with a viewer's token, {args.n2 - args.n1} requests "
            f"(runs of {args.n1} and {args.n2}), one keep-alive connection, valgrind cachegrind"
        )
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            futures = {}
            for name, source in sources.items():
                version_env = dict(env)
                if source is not None:
                    version_env["PYTHONPATH"] = str(source)
                futures[name] = pool.submit(
                    instructions, name, command, version_env, project, args, request
                )
            results = {name: future.result() for name, future in futures.items()}

    reference_name = next(iter(results))
    reference = results[reference_name]
    print()
    print(f"{'version':<24}{'instructions/request':>22}{'difference':>14}{'share':>9}")
    print("-" * 69)
    for name, value in results.items():
        difference = value - reference
        print(f"{name:<24}{value:>22,.0f}{difference:>+14,.0f}{difference / reference:>+9.2%}")
    print("-" * 69)
    print(f"share: the difference as a part of {reference_name}'s instructions per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
