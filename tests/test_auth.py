"""Logging in over HTTP against each booted auth variant, with credentials made by the
service's own CLI (or, for oidc, by a local issuer the test runs)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from auth_helpers import (
    cli,
    create_api_key,
    create_user,
    issuer_env,
    issuer_token,
    local_issuer,
    log_in,
)
from conftest import Project
from harness import serving
from test_variants import assert_problem

pytestmark = pytest.mark.variant


def refused(response: httpx.Response, status: int = 401) -> None:
    assert_problem(response, status)
    assert response.headers["www-authenticate"]


@pytest.mark.variants(lambda v: v.named("has_users"))
def test_jwt_log_in_refresh_log_out_and_roles(
    project: Project, database_env: dict[str, str]
) -> None:
    with serving(project.path, project.slug, database_env) as service:
        base = f"{service.url}/api/v1"
        refused(httpx.get(f"{base}/auth/me"))
        admin, viewer = (create_user(project, service.env, role) for role in ("admin", "viewer"))
        tokens = log_in(service, admin)
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        me = httpx.get(f"{base}/auth/me", headers=bearer).json()
        assert me["scheme"] == "jwt"
        assert me["roles"] == ["admin"]

        renewed = httpx.post(
            f"{base}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert renewed.status_code == 200, renewed.text
        newest = renewed.json()["refresh_token"]
        assert httpx.post(f"{base}/auth/logout", json={"refresh_token": newest}).status_code == 204
        refused(httpx.post(f"{base}/auth/refresh", json={"refresh_token": newest}))
        refused(httpx.post(f"{base}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}))

        wrong = httpx.post(
            f"{base}/auth/token", data={"username": admin, "password": "not the password"}
        )
        refused(wrong)

        viewer_bearer = {"Authorization": f"Bearer {log_in(service, viewer)['access_token']}"}
        assert httpx.get(f"{base}/items", headers=viewer_bearer).status_code == 200
        refused(httpx.post(f"{base}/items", json={"name": "x"}, headers=viewer_bearer), 403)
        created = httpx.post(f"{base}/items", json={"name": "x"}, headers=bearer)
        assert created.status_code == 201
        service.stop()
    events = [line for line in service.logs() if line.get("event") == "auth.failed"]
    assert {line["reason"] for line in events} >= {"bad_credentials", "refresh_token_revoked"}
    assert "not the password" not in service.output
    assert "boot-test-password" not in service.output


@pytest.mark.variants(lambda v: v.named("has_api_keys"))
def test_api_key_created_used_and_revoked(project: Project, database_env: dict[str, str]) -> None:
    key, entry = create_api_key(project, database_env, "admin")
    env = {**database_env}
    if not project.named("has_db"):
        env["API_KEY_HASHES"] = entry
    with serving(project.path, project.slug, env) as service:
        me = f"{service.url}/api/v1/auth/me"
        identity = httpx.get(me, headers={"X-API-Key": key})
        assert identity.status_code == 200, identity.text
        assert identity.json()["scheme"] == "api_key"
        assert identity.json()["roles"] == ["admin"]
        refused(httpx.get(me, headers={"X-API-Key": key + "x"}))
        refused(httpx.get(me))
        if project.named("has_db"):
            name = cli(project, database_env, "create-api-key", "--name", "revoked-soon")
            revoked_key = name.splitlines()[-1]
            assert httpx.get(me, headers={"X-API-Key": revoked_key}).status_code == 200
            cli(project, database_env, "revoke-api-key", "revoked-soon")
            refused(httpx.get(me, headers={"X-API-Key": revoked_key}))
        service.stop()
    assert key not in service.output


@pytest.mark.variants(lambda v: v.has("auth", "oidc"))
def test_oidc_tokens_of_a_local_issuer(project: Project, database_env: dict[str, str]) -> None:
    with (
        local_issuer(project) as issuer,
        serving(
            project.path, project.slug, {**database_env, **issuer_env(issuer, project)}
        ) as service,
    ):
        ready = httpx.get(f"{service.url}/health/ready").json()
        assert ready["checks"]["oidc"]["status"] == "ok"
        me = f"{service.url}/api/v1/auth/me"
        token = issuer_token(issuer, "editor")
        identity = httpx.get(me, headers={"Authorization": f"Bearer {token}"})
        assert identity.status_code == 200, identity.text
        assert identity.json() == {"subject": "boot-user", "scheme": "oidc", "roles": ["editor"]}

        header, payload, _ = token.split(".")
        unsigned = base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).rstrip(b"=")
        refused(httpx.get(me, headers={"Authorization": f"Bearer {unsigned.decode()}.{payload}."}))
        refused(httpx.get(me, headers={"Authorization": f"Bearer {header}.{payload}.AAAA"}))
        if project.named("has_db"):
            viewer = {"Authorization": f"Bearer {issuer_token(issuer, 'viewer')}"}
            refused(
                httpx.post(f"{service.url}/api/v1/items", json={"name": "x"}, headers=viewer), 403
            )


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


# The service's peak RSS may grow this much while its issuer serves a 200 MiB JWKS: the
# 1 MiB it reads, and the buffers of one connection. Measured: 2 GiB before the cap.
JWKS_PEAK_GROWTH_BOUND_MIB = 32


@pytest.mark.variants(lambda v: v.has("auth", "oidc"))
def test_a_hostile_jwks_never_gives_a_500_nor_takes_memory(
    project: Project, database_env: dict[str, str], record_property: Callable[[str, object], None]
) -> None:
    with local_issuer(project) as issuer:
        env = {**database_env, **issuer_env(issuer, project), "OIDC_JWKS_REFRESH_SECONDS": "1"}
        httpx.get(f"{issuer}/jwks-mode", params={"name": "null"})
        with serving(project.path, project.slug, env) as service:
            assert service.process is not None
            me = f"{service.url}/api/v1/auth/me"

            def ask(kid: str = "boot-key") -> httpx.Response:
                token = httpx.get(f"{issuer}/token", params={"roles": "viewer", "kid": kid})
                bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
                return httpx.get(me, headers=bearer, timeout=30)

            # At startup, a bad JWKS: no key was ever loaded, so 503.
            assert_problem(ask(), 503)
            assert httpx.get(f"{service.url}/health/ready").status_code == 503
            httpx.get(f"{issuer}/jwks-mode", params={"name": "good"})
            time.sleep(1.1)  # past the wait between two fetches
            assert ask().status_code == 200
            before = peak_rss_mib(service.process.pid)
            for mode in ("huge", "five", "nested", "not-objects", "not-json"):
                httpx.get(f"{issuer}/jwks-mode", params={"name": mode})
                time.sleep(1.1)  # past OIDC_JWKS_REFRESH_SECONDS: an unknown kid fetches
                refused(ask(kid=f"unknown-{mode}"))
                assert ask().status_code == 200, f"{mode}: the keys already loaded stay"
            growth = peak_rss_mib(service.process.pid) - before
            sent = httpx.get(f"{issuer}/jwks-sent").json()
            service.stop()
    record_property("memory", f"peak RSS +{growth:.1f} MiB; {sent >> 20} MiB of JWKS sent")
    assert growth < JWKS_PEAK_GROWTH_BOUND_MIB, f"peak RSS grew by {growth:.1f} MiB"
    assert sent < 64 << 20, f"{sent} bytes of the 200 MiB JWKS were read"
    assert not [line for line in service.logs() if line.get("event") == "unhandled_exception"]
