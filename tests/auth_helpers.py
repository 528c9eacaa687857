"""Credentials for booted services, made the way an operator makes them: with the service's
own CLI (`create-user`, `create-api-key`) or, for oidc, from a local issuer process."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from conftest import Project
from harness import Service, run

ISSUER_SCRIPT = Path(__file__).with_name("oidc_issuer.py")
PASSWORD = "boot-test-password-1234"


@contextmanager
def local_issuer(project: Project) -> Iterator[str]:
    """A local OIDC issuer run by the variant's own interpreter (it has PyJWT); its URL."""
    process = subprocess.Popen(
        [str(project.path / ".venv" / "bin" / "python"), str(ISSUER_SCRIPT), project.slug],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        process.terminate()
        process.wait(10)


def issuer_env(issuer: str, project: Project) -> dict[str, str]:
    return {"OIDC_ISSUER": issuer, "OIDC_AUDIENCE": project.slug}


def cli(project: Project, env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = run(project.path, project.slug, *args, env=env, input=stdin, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def create_user(project: Project, env: dict[str, str], role: str) -> str:
    username = f"{role}-{secrets.token_hex(4)}"
    cli(project, env, "create-user", username, "--role", role, stdin=f"{PASSWORD}\n")
    return username


def log_in(service: Service, username: str) -> dict[str, str]:
    response = httpx.post(
        f"{service.url}/api/v1/auth/token", data={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


def create_api_key(project: Project, env: dict[str, str], role: str) -> tuple[str, str]:
    """A new key and its `API_KEY_HASHES` entry (the same line without a database)."""
    name = f"{role}-{secrets.token_hex(4)}"
    lines = cli(project, env, "create-api-key", "--name", name, "--role", role).splitlines()
    return lines[-1] if project.named("has_db") else lines[1], lines[-1]


def issuer_token(issuer: str, role: str) -> str:
    response = httpx.get(f"{issuer}/token", params={"roles": role})
    token: str = response.json()["access_token"]
    return token


def credentials(project: Project, service: Service, role: str = "admin") -> dict[str, str]:
    """Request headers of a caller with `role` for a booted service (empty without auth)."""
    auth = project["auth"]
    if project.named("has_users"):
        username = create_user(project, service.env, role)
        return {"Authorization": f"Bearer {log_in(service, username)['access_token']}"}
    if auth == "api_key":
        return {"X-API-Key": create_api_key(project, service.env, role)[0]}
    if auth == "oidc":
        return {"Authorization": f"Bearer {issuer_token(service.env['OIDC_ISSUER'], role)}"}
    return {}


@contextmanager
def auth_boot_env(project: Project) -> Iterator[dict[str, str]]:
    """Extra environment a variant needs to boot ready: oidc gets a running local issuer."""
    if project["auth"] != "oidc":
        yield {}
        return
    with local_issuer(project) as issuer:
        yield issuer_env(issuer, project)
