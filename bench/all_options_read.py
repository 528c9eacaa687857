"""The authenticated page read with every option on against the default answers, in process,
counted by valgrind: the observability tax.

Renders and installs the default answers and the all-on-pg variant as `startup.py` does
(Python 3.12, no dev group), or takes them with `--project` and `--all-on`; starts a private
PostgreSQL and Redis (`tests/servers.py`), migrates each project's database (SQLite for the
default, a fresh PostgreSQL database for all-on), and runs `items_inprocess.py count N1` and
`count N2` in each project's interpreter under `valgrind --tool=cachegrind --cache-sim=no`:
`(Ir(N2) - Ir(N1)) / (N2 - N1)` instructions per read. The all-on project runs with a Sentry
DSN (a closed local port: no event is sent on a read that succeeds), no OTLP endpoint (spans
are recorded and dropped, as when no collector is set) and the sampling of its `.env`
(`OTEL_TRACES_SAMPLER_ARG=0.1`) unless `--env` says otherwise. Access lines go to /dev/null.
Both read users' roles once a minute (`USER_CACHE_SECONDS=60`): under valgrind a run lasts
minutes, and with the default 5 s the share of reads that miss the cache would follow the
machine's load.

    .venv/bin/python bench/all_options_read.py [--project PATH] [--all-on PATH] [--keep]
        [--n1 100] [--n2 400] [--env KEY=VALUE ...] [--only default|all-on]
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import secrets
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(BENCH))

from servers import fresh_database, private_postgres, private_redis  # noqa: E402
from startup import prepare  # noqa: E402
from throughput import load, project_slug, template_state  # noqa: E402

TARGET_RATIO = 1.3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a rendered default project to reuse")
    parser.add_argument("--all-on", type=Path, help="a rendered all-on-pg project to reuse")
    parser.add_argument("--keep", action="store_true", help="keep the rendered projects")
    parser.add_argument("--n1", type=int, default=100)
    parser.add_argument("--n2", type=int, default=400)
    parser.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE for the all-on project"
    )
    parser.add_argument("--only", choices=["default", "all-on"], help="measure one project")
    return parser.parse_args(argv)


def count(project: Path, env: dict[str, str], n: int) -> int:
    command = [
        "valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
        str(project / ".venv" / "bin" / "python"), str(BENCH / "items_inprocess.py"),
        "count", str(n),
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, timeout=1800,
    )  # fmt: skip
    found = re.search(r"I\s+refs:\s+([\d,]+)", result.stderr)
    if result.returncode != 0 or not found:
        raise RuntimeError(f"{command} failed:\n{result.stderr[-3000:]}")
    return int(found.group(1).replace(",", ""))


def per_read(project: Path, env: dict[str, str], n1: int, n2: int) -> float:
    # A native run first: the database is seeded and the bytecode cache filled.
    subprocess.run(
        [str(project / ".venv" / "bin" / "python"), str(BENCH / "items_inprocess.py"),
         "count", "5"],
        cwd=project, env=env, stdout=subprocess.DEVNULL, check=True, timeout=600,
    )  # fmt: skip
    return (count(project, env, n2) - count(project, env, n1)) / (n2 - n1)


def environment(project: Path, pycache: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        {
            "APP_ENV": "development",
            "LOG_FORMAT": "json",
            "JWT_SECRET_KEY": secrets.token_urlsafe(48),
            "BACKUP_SIGNING_KEY": secrets.token_urlsafe(48),
            "PYTHONPYCACHEPREFIX": str(pycache),
            "USER_CACHE_SECONDS": "60",
        }
    )
    env.update(extra)
    return env


def migrate(project: Path, env: dict[str, str]) -> None:
    slug = project_slug(project)
    subprocess.run(
        [str(project / ".venv" / "bin" / slug), "migrate"],
        cwd=project, env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"all_options_read: {now}, load {load()}")
    print(f"  {template_state()}")
    extra = dict(item.split("=", 1) for item in args.env)
    with ExitStack() as stack:
        default, all_on = prepare(stack, args)
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chf-read-")))
        results: dict[str, float] = {}
        if args.only in (None, "default"):
            env = environment(
                default, work / "pyc-default", {"DATABASE_URL": f"sqlite:///{work / 'read.db'}"}
            )
            migrate(default, env)
            results["default"] = per_read(default, env, args.n1, args.n2)
            print(f"  default (SQLite)          {results['default']:12,.0f} instructions/read")
        if args.only in (None, "all-on"):
            admin = stack.enter_context(private_postgres())
            database = stack.enter_context(fresh_database(admin, "read"))
            redis = stack.enter_context(private_redis())
            env = environment(
                all_on,
                work / "pyc-all-on",
                {
                    "DATABASE_URL": database,
                    "REDIS_URL": redis.url,
                    "SENTRY_DSN": "http://public@127.0.0.1:9/1",
                    "OTEL_EXPORTER_OTLP_ENDPOINT": "",
                    **extra,
                },
            )
            migrate(all_on, env)
            results["all-on"] = per_read(all_on, env, args.n1, args.n2)
            shown = " ".join(args.env)
            print(f"  all-on-pg {shown:15} {results['all-on']:12,.0f} instructions/read")
        if len(results) == 2:
            ratio = results["all-on"] / results["default"]
            print(f"\nall-on/default = {ratio:.2f} (target <= {TARGET_RATIO})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
