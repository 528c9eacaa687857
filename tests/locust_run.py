"""Run the generated project's load test (`loadtests/locustfile.py`) headless against a booted
service, as its docs/operations.md says, and read Locust's CSV report. Used by test_loadtest.py and
bench/load_test.py."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

from auth_helpers import PASSWORD, create_user
from conftest import Project
from harness import Service, tool, uv_env

# The generated service's quotas would refuse most of the load; a load test raises them.
UNLIMITED = {
    "RATE_LIMIT_DEFAULT": "1000000/minute",
    "RATE_LIMIT_AUTHENTICATED": "1000000/minute",
    "RATE_LIMIT_LOGIN": "1000000/minute",
}


def run_locust(
    project: Project, service: Service, out: Path, *, users: int, spawn_rate: float, seconds: int
) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, str]]]:
    """The finished `locust --headless` run and its statistics, by route name
    ("Aggregated" for all of them); an editor is made for it with `create-user`."""
    username = create_user(project, service.env, "editor")
    command = [
        tool("uv"),
        "run",
        "--group",
        "loadtest",
        "locust",
        "-f",
        "loadtests/locustfile.py",
        "--headless",
        "--host",
        service.url,
        "--users",
        str(users),
        "--spawn-rate",
        str(spawn_rate),
        "--run-time",
        f"{seconds}s",
        "--stop-timeout",
        "5",
        "--csv",
        str(out / "load"),
        "--html",
        str(out / "load.html"),
        "--only-summary",
    ]
    env = {**uv_env(), "LOADTEST_USERNAME": username, "LOADTEST_PASSWORD": PASSWORD}
    result = subprocess.run(
        command,
        cwd=project.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 240,
        check=False,
    )
    stats: dict[str, dict[str, str]] = {}
    report = out / "load_stats.csv"
    if report.exists():
        with report.open(newline="") as rows:
            stats = {f"{row['Type']} {row['Name']}".strip(): row for row in csv.DictReader(rows)}
    return result, stats
