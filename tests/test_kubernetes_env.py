"""Every container of the production overlay starts with the settings its manifests give it.

`APP_ENV=production` refuses an unsafe or incomplete configuration, and every command (serve,
migrate, backup) loads the same settings: a container that lacks a secret the production
check needs stops at once with exit status 2. Static checks of the manifests cannot see that,
so each container's environment is built from the overlay as the cluster would build it (its
ConfigMap, each value and secret reference) and the installed service loads its settings
from exactly that environment.
"""

from __future__ import annotations

import hashlib
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Project
from harness import tool

# Stand-ins for the values of the Secrets an operator creates, in the form each one takes.
SECRET_VALUES = {
    "DATABASE_URL": f"postgresql://app:{secrets.token_urlsafe(24)}@postgres:5432/app",
    "REDIS_URL": "redis://redis:6379/0",
    "SENTRY_DSN": "https://public@sentry.example.com/1",
    # The hash of a key as `create-api-key` makes it (a common word's hash is refused).
    "API_KEY_HASHES": f"deploy:admin:{hashlib.sha256(secrets.token_bytes(32)).hexdigest()}",
}


def secret_value(key: str) -> str:
    return SECRET_VALUES.get(key, secrets.token_urlsafe(48))


def pod_specs(documents: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for document in documents:
        kind, spec = document["kind"], document.get("spec", {})
        if kind == "CronJob":
            yield document["metadata"]["name"], spec["jobTemplate"]["spec"]["template"]["spec"]
        elif kind in {"Deployment", "StatefulSet", "Job"}:
            yield document["metadata"]["name"], spec["template"]["spec"]


def container_environment(
    container: dict[str, Any], config_maps: dict[str, dict[str, str]]
) -> dict[str, str]:
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        reference = source.get("configMapRef")
        assert reference, f"{container['name']}: only ConfigMaps are expected in envFrom"
        environment.update(config_maps[reference["name"]])
    for variable in container.get("env", []):
        name, origin = variable["name"], variable.get("valueFrom", {})
        if "value" in variable:
            environment[name] = str(variable["value"])
        elif "secretKeyRef" in origin:
            if not origin["secretKeyRef"].get("optional", False):
                environment[name] = secret_value(origin["secretKeyRef"]["key"])
        elif "configMapKeyRef" in origin:
            reference = origin["configMapKeyRef"]
            environment[name] = config_maps[reference["name"]][reference["key"]]
    return environment


@pytest.mark.variants(lambda v: v.named("has_kubernetes"))
def test_every_production_container_passes_the_production_settings_check(
    project: Project, tmp_path: Path
) -> None:
    overlay = project.path / "deploy" / "kubernetes" / "overlays" / "production"
    built = subprocess.run(
        [tool("kubectl"), "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    documents = [document for document in yaml.safe_load_all(built.stdout) if document]
    config_maps = {
        document["metadata"]["name"]: document.get("data", {})
        for document in documents
        if document["kind"] == "ConfigMap"
    }
    python = project.path / ".venv" / "bin" / "python"
    load = f"from {project.package}.environment import load_settings; load_settings()"
    checked = []
    for pod, spec in pod_specs(documents):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            environment = container_environment(container, config_maps)
            assert environment.get("APP_ENV") == "production", f"{pod}/{container['name']}"
            result = subprocess.run(
                [str(python), "-c", load],
                # An empty working directory: no .env is read, only the manifests' values.
                cwd=tmp_path,
                env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **environment},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, (
                f"{pod}/{container['name']} ({' '.join(container.get('args', []))}) would "
                f"not start in production:\n{result.stderr}"
            )
            checked.append(f"{pod}/{container['name']}")
    expected = {f"{project.slug}/app"}
    if project.named("has_db"):
        expected.add(f"{project.slug}/migrate")
    assert expected <= set(checked), checked
