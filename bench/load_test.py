"""Load test figures of the default service: the generated `loadtests/locustfile.py` (Locust)
run headless against the booted default variant, as its docs/operations.md says.

The default answers (SQLite, JWT, memory limiter with limits no request reaches, Prometheus),
one uvicorn worker; Locust on the same machine ramps to `--users` users (5 a second), each
logging in once and then listing, reading and creating items with 0.5-2 s of think time.
It prints requests per second, failures and the 50/95/99th percentiles per route, and the
service level objectives of the generated docs/operations.md beside them. Nothing is asserted.

    .venv/bin/python bench/load_test.py [--users 20] [--seconds 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))

import harness  # noqa: E402
from conftest import Project  # noqa: E402
from locust_run import UNLIMITED, run_locust  # noqa: E402
from variants import Variant  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args(argv)
    questions = harness.copier_questions()
    with tempfile.TemporaryDirectory(prefix="chf-load-") as tmp:
        started = time.monotonic()
        path = harness.install_default(Path(tmp) / "service")
        print(f"rendered and installed the default service in {time.monotonic() - started:.0f}s")
        project = Project(Variant("default"), path, {"project_slug": "my-service"})
        env = {"DATABASE_URL": f"sqlite:///{tmp}/load.db", **UNLIMITED}
        migrated = harness.run(path, project.slug, "migrate", env={**harness.uv_env(), **env})
        if migrated.returncode != 0:
            raise SystemExit(f"migrate failed:\n{migrated.stderr}")
        with harness.serving(path, project.slug, env) as service:
            result, stats = run_locust(
                project, service, Path(tmp), users=args.users, spawn_rate=5, seconds=args.seconds
            )
    if result.returncode != 0 and not stats:
        raise SystemExit(f"locust failed:\n{result.stderr[-3000:]}")
    print(
        f"\n{args.users} users, {args.seconds} s, 1 worker (locust exit status {result.returncode})"
    )
    print(
        f"{'route':<36} {'requests':>8} {'failures':>8} {'req/s':>6}"
        f" {'p50':>6} {'p95':>6} {'p99':>6}"
    )
    for name, row in stats.items():
        print(
            f"{name:<36} {row['Request Count']:>8} {row['Failure Count']:>8}"
            f" {float(row['Requests/s']):>6.1f} {row['50%']:>6} {row['95%']:>6} {row['99%']:>6}"
        )
    print(
        f"\nobjectives (ms): p95 < {questions['slo_p95_ms']['default']},"
        f" p99 < {questions['slo_p99_ms']['default']};"
        f" availability {questions['slo_availability_percent']['default']}%"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
