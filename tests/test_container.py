"""The generated container image: linted in every variant, built and run for real in two.

The static check needs no engine: hadolint on the Dockerfile (checkov: test_checkov.py). The
booted variants (the default answers, and PostgreSQL + Redis) are built by a real dockerd from
local stand-ins of their base images (tests/containers.py), run the way a platform runs them
(non-root, read-only root filesystem, no capabilities, no new privileges, a tmpfs for /tmp),
reach healthy through the image's own HEALTHCHECK, answer over HTTP and stop on `docker stop`
with exit code 0 after finishing the request in flight. Generated files are never edited.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from auth_helpers import PASSWORD, log_in
from conftest import Project
from containers import docker, image_layers_containing, stand_ins_for
from harness import tool
from test_variants import SlowRequest

BOOTED = ("default", "open-pg-redis")


@pytest.fixture(scope="module")
def dockerfiles(rendered: dict[str, Path]) -> dict[str, Path]:
    """Every variant's Dockerfile (rendered without the copy tasks: the files alone)."""
    return {variant: path / "Dockerfile" for variant, path in rendered.items()}


@pytest.mark.fast
@pytest.mark.xdist_group("rendered")
def test_hadolint_finds_nothing_in_any_variant(dockerfiles: dict[str, Path]) -> None:
    for variant, dockerfile in dockerfiles.items():
        result = subprocess.run(
            [tool("hadolint"), "--failure-threshold", "info", str(dockerfile)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"{variant}: {result.stdout}{result.stderr}"
        assert "hadolint ignore" not in dockerfile.read_text(), variant


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Running:
    """A container on the host network: `port` is where it listens."""

    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def state(self) -> dict[str, object]:
        result = docker("inspect", "--format", "{{json .State}}", self.name)
        state: dict[str, object] = json.loads(result.stdout)
        return state


@pytest.fixture(scope="session")
def image(project: Project, engine: None) -> Iterator[str]:
    """The variant's image, built once per session and worker (removed at the end)."""
    stand_ins_for(project.path / "Dockerfile")
    tag = f"chfa-test/{project.variant.id}:{secrets.token_hex(4)}"
    started = time.monotonic()
    docker("build", "--quiet", "-t", tag, str(project.path), timeout=1800)
    print(f"\n{project.variant.id}: image built in {time.monotonic() - started:.0f}s")
    try:
        yield tag
    finally:
        docker("rmi", "--force", tag, check=False)


def container_env(project: Project, database_env: dict[str, str], port: int) -> dict[str, str]:
    env = {"PORT": str(port), "SHUTDOWN_DRAIN_SECONDS": "1.5"}
    if project["database"] == "postgresql":
        env["DATABASE_URL"] = database_env["DATABASE_URL"]
    dotenv = (project.path / ".env").read_text()
    for name in ("JWT_SECRET_KEY", "REDIS_URL"):
        if match := re.search(rf"^{name}=(.+)$", dotenv, re.M):
            env[name] = match.group(1)
    return env


@pytest.mark.variant
@pytest.mark.variants(lambda v: v.id in BOOTED)
def test_image_runs_hardened_answers_and_stops_cleanly(
    project: Project, image: str, database_env: dict[str, str]
) -> None:
    port = free_port()
    name = f"chfa-test-{project.variant.id}-{secrets.token_hex(3)}"
    volume = f"{name}-data"
    env = container_env(project, database_env, port)
    flags = [f"--env={key}={value}" for key, value in env.items()]
    hardened = [
        "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--tmpfs", "/tmp", "--network", "host",
    ]  # fmt: skip
    if project["database"] == "sqlite":
        hardened += ["--volume", f"{volume}:/app/data"]
    try:
        migrated = docker("run", "--rm", *hardened, *flags, image, "migrate", timeout=120)
        assert "is at revision head" in migrated.stdout, migrated.stdout + migrated.stderr

        started = time.monotonic()
        docker("run", "--detach", "--name", name, *hardened, *flags, image)
        running = Running(name, port)
        while (health := running.state()["Health"]["Status"]) != "healthy":  # type: ignore[index]
            assert health == "starting", docker("logs", name).stderr[-3000:]
            assert time.monotonic() - started < 90, "not healthy within 90 s"
            time.sleep(0.5)
        print(f"\n{project.variant.id}: healthy {time.monotonic() - started:.1f}s after start")

        assert docker("inspect", "--format", "{{.Config.User}}", name).stdout.strip() == (
            "10001:10001"
        )
        uid = docker("exec", name, "python", "-c", "import os; print(os.getuid(), os.getgid())")
        assert uid.stdout.split() == ["10001", "10001"]
        tools = docker("exec", name, "sh", "-c", "command -v uv gcc cc make || true")
        assert tools.stdout.strip() == "", f"build tools in the runtime image: {tools.stdout}"
        write = docker("exec", name, "sh", "-c", "touch /app/x", check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr

        live = httpx.get(f"{running.url}/health/live")
        assert live.status_code == 200 and live.json() == {"status": "ok"}
        ready = httpx.get(f"{running.url}/health/ready").json()
        assert ready["status"] == "ok", ready
        headers: dict[str, str] = {}
        if project["auth"] == "jwt":
            docker(
                "exec", "--interactive", name, project.slug,
                "create-user", "admin-c", "--role", "admin", input=f"{PASSWORD}\n",
            )  # fmt: skip
            token = log_in(running, "admin-c")["access_token"]  # type: ignore[arg-type]
            headers = {"Authorization": f"Bearer {token}"}

        slow = SlowRequest(running, project, headers)  # type: ignore[arg-type]
        slow.start()
        assert slow.in_flight.wait(10)
        time.sleep(0.3)
        stop_started = time.monotonic()
        stopped = docker("stop", "--time", "30", name, timeout=60)
        stop_took = time.monotonic() - stop_started
        slow.join(30)
        state = running.state()
        logs = docker("logs", name)
        assert state["ExitCode"] == 0, logs.stdout[-3000:] + logs.stderr[-3000:]
        assert stopped.returncode == 0 and stop_took < 30, f"stopped after {stop_took:.1f}s"
        assert slow.outcome is not None and slow.outcome.startswith(slow.expected), slow.outcome
        assert "shutdown.complete" in logs.stdout + logs.stderr
        print(f"{project.variant.id}: docker stop took {stop_took:.1f}s, exit code 0")
    finally:
        docker("rm", "--force", name, check=False)
        docker("volume", "rm", volume, check=False)


@pytest.mark.variant
@pytest.mark.variants(lambda v: v.id in BOOTED)
def test_no_secret_of_dotenv_reaches_an_image_layer(project: Project, image: str) -> None:
    """`.env` holds the generated secrets: none of them is in any layer or the config."""
    secret_values = [
        line.split("=", 1)[1]
        for line in (project.path / ".env").read_text().splitlines()
        if re.match(r"^(JWT_SECRET_KEY|POSTGRES_PASSWORD)=.{32,}$", line)
    ]
    assert secret_values, ".env of this variant has no generated secret to look for"
    found = image_layers_containing(image, [*secret_values, "def create_app("])
    assert found.pop("def create_app("), "the search finds the service's own code"
    assert found == {value: [] for value in secret_values}


@pytest.mark.variant
@pytest.mark.variants(lambda v: v.id in BOOTED)
def test_dockerignore_sends_only_the_sources(project: Project, engine: None) -> None:
    """The build context (as .dockerignore filters it) has no .env, .venv, tests or caches."""
    tag = f"chfa-test/context-{secrets.token_hex(4)}"
    docker("build", "--quiet", "-t", tag, "-f", "-", str(project.path),
           input="FROM scratch\nCOPY . /context/\n")  # fmt: skip
    try:
        container = docker("create", tag, "none").stdout.strip()
        listing = subprocess.run(
            f"docker export {container} | tar -t", shell=True, capture_output=True, text=True
        ).stdout.split()
        docker("rm", container)
    finally:
        docker("rmi", "--force", tag, check=False)
    top = {entry.split("/")[1] for entry in listing if entry.startswith("context/")} - {""}
    assert (project.path / ".env").exists() and (project.path / ".venv").exists()
    assert top == {"pyproject.toml", "uv.lock", "README.md", "src"}, top
    assert not [entry for entry in listing if "__pycache__" in entry or entry.endswith(".pyc")]


@pytest.mark.variant
@pytest.mark.variants(lambda v: v.id in ("default", "all-on-pg"))
def test_postgresql_client_matches_the_server_and_nothing_else_is_added(
    project: Project, image: str
) -> None:
    """With PostgreSQL and backups the image has the client of the server's major version
    (postgres:17 in compose.yaml), for the non-root user; SQLite's image has none."""
    clients = ("pg_dump", "pg_restore", "psql")
    if project["database"] != "postgresql":
        found = docker("run", "--rm", "--entrypoint", "sh", image, "-c",
                       "command -v pg_dump pg_restore psql || true")  # fmt: skip
        assert found.stdout.strip() == ""
        return
    compose_file = (project.path / "compose.yaml").read_text()
    server_major = re.search(r"image: postgres:(\d+)", compose_file)
    assert server_major is not None
    for client in clients:
        version = docker("run", "--rm", "--entrypoint", client, image, "--version")
        match = re.search(r"\(PostgreSQL\) (\d+)\.", version.stdout)
        assert match and match.group(1) == server_major.group(1) == "17", version.stdout
    size = int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout)
    print(f"\n{project.variant.id}: image {size / 1e6:.0f} MB with the PostgreSQL client")
