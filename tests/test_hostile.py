"""Hostile clients against a booted service: memory stays bounded whatever strings they
choose, and production refuses an unsafe configuration before it serves anything."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import Project
from harness import run, serving

pytestmark = pytest.mark.variant

# How much the service's resident memory may grow while clients send the largest strings they
# are allowed to, after a warm-up of the same requests. Each log-in costs a password hash (a
# dummy one for an unknown user), so there are few of them, but with a user name of 1 MB (the
# body limit) each. Measured on 2026-11-30: +0.0 MiB; +14.3 MiB before limiter keys were
# bounded (the user names and forwarded addresses were kept whole for the window).
RSS_GROWTH_BOUND_MIB = 8
USER_NAME = "u" * 1_000_000
FORWARDED_FOR = "f" * 4000


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def hostile_requests(client: httpx.Client, round_: str, log_ins: int, reads: int) -> None:
    """Log-ins with distinct user names of 1 MB, and reads from distinct forwarded addresses
    of 4000 characters with the longest request id accepted; every answer is a refusal or a
    page, never a 5xx."""
    for number in range(log_ins):
        name = f"{round_}{number}-{USER_NAME}"[: len(USER_NAME)]
        form = {"username": name, "password": "not-the-password"}
        response = client.post("/api/v1/auth/token", data=form)
        assert response.status_code == 401, response.text
    for number in range(reads):
        headers = {
            "X-Forwarded-For": f"{round_}{number}-{FORWARDED_FOR}"[: len(FORWARDED_FOR)],
            "X-Request-ID": f"{round_}{number}".ljust(128, "r"),
        }
        response = client.get("/api/v1/info", headers=headers)
        assert response.status_code == 200, response.text


@pytest.mark.variants(lambda v: v.id == "default")
def test_memory_stays_bounded_under_the_largest_client_strings(
    project: Project,
    database_env: dict[str, str],
    record_property: Callable[[str, object], None],
) -> None:
    # Behind a proxy (the test client is the trusted proxy), every request comes from a
    # client address the proxy forwards; quotas high enough to keep every request counted.
    env = {
        **database_env,
        "TRUSTED_PROXIES": "127.0.0.1",
        "RATE_LIMIT_DEFAULT": "1000000/minute",
    }
    with (
        serving(project.path, project.slug, env) as service,
        httpx.Client(base_url=service.url, timeout=60) as client,
    ):
        assert service.process is not None
        hostile_requests(client, "warm", log_ins=2, reads=200)
        before = rss_mib(service.process.pid)
        hostile_requests(client, "bulk", log_ins=16, reads=1000)
        after = rss_mib(service.process.pid)
        service.stop()
    growth = after - before
    record_property("memory", f"RSS {before:.1f} MiB -> {after:.1f} MiB (+{growth:.1f} MiB)")
    assert growth < RSS_GROWTH_BOUND_MIB, f"RSS grew by {growth:.1f} MiB"


@pytest.mark.variants(lambda v: v.id == "default")
def test_production_refuses_to_start_with_an_unsafe_setting(
    project: Project, database_env: dict[str, str]
) -> None:
    env = {
        **database_env,
        "APP_ENV": "production",
        "DOCS_ENABLED": "false",
        "TRUSTED_HOSTS": "api.example.com",
        "METRICS_TOKEN": os.urandom(24).hex(),
        "TRUSTED_PROXIES": "*",
    }
    result = run(project.path, project.slug, "serve", env=env, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        "Invalid configuration (environment variables or .env):",
        "  TRUSTED_PROXIES must list the addresses of your proxies in production, not '*'",
    ]
