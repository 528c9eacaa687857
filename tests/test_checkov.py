"""checkov over every variant's CI files, Dockerfiles and Kubernetes manifests: one run per
framework over all variants (each run takes a minute or more of CPU, so these stay out of the
fast tier; the other validators of the same files are in it)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness import checkov_command
from test_ci import json_documents, with_ci
from test_kubernetes import KUBERNETES_VARIANTS, OVERLAYS, kustomize, parametrize_variants
from variants import Variant

# With the other users of the `rendered` fixture.
pytestmark = pytest.mark.xdist_group("rendered")


def checkov(*args: str, quiet: bool = True) -> subprocess.CompletedProcess[str]:
    command = checkov_command() if quiet else [a for a in checkov_command() if a != "--quiet"]
    return subprocess.run(
        [*command, *args, "--output", "json"], capture_output=True, text=True, timeout=600
    )


def test_ci_files_pass_every_check(rendered: dict[str, Path]) -> None:
    roots = [*with_ci(rendered, "github").values(), *with_ci(rendered, "gitlab").values()]
    directories = [arg for root in roots for arg in ("--directory", str(root))]
    result = checkov("--framework", "github_actions", "gitlab_ci", *directories)
    reports = json_documents(result.stdout)
    summary = {report["check_type"]: report["summary"] for report in reports}
    failed = [
        f"{check['check_id']} {check['check_name']}: {check['file_path']}"
        for report in reports
        for check in report["results"]["failed_checks"]
    ]
    assert failed == [], result.stderr[-2000:]
    assert summary["github_actions"]["passed"] > 0
    assert summary["gitlab_ci"]["passed"] > 0
    assert result.returncode == 0, result.stderr[-2000:]


def test_every_variants_dockerfile_passes_every_check(rendered: dict[str, Path]) -> None:
    """One run over all variants (each variant's file is its own result)."""
    root = next(iter(rendered.values())).parent
    result = checkov("--directory", str(root), "--framework", "dockerfile")
    report = json.loads(result.stdout)
    failed = [
        f"{check['file_path']}: {check['check_id']} {check['check_name']}"
        for check in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert report["summary"]["passed"] >= 10 * len(rendered), report["summary"]
    assert report["summary"]["skipped"] == 0


@pytest.fixture(scope="module")
def kubernetes_report(tmp_path_factory: pytest.TempPathFactory, rendered: dict[str, Path]) -> Any:
    """checkov's report over every overlay of every Kubernetes variant, as `kubectl kustomize`
    builds it; without --quiet, so the report keeps the passed and skipped checks too."""
    manifests = tmp_path_factory.mktemp("checkov-manifests")
    for variant in KUBERNETES_VARIANTS:
        for overlay in OVERLAYS:
            built = kustomize(rendered[variant.id] / "deploy" / "kubernetes" / "overlays" / overlay)
            (manifests / f"{variant.id}--{overlay}.yaml").write_text(built, encoding="utf-8")
    result = checkov("--directory", str(manifests), "--framework", "kubernetes", quiet=False)
    assert result.stdout.startswith(("{", "[")), f"checkov failed:\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


@parametrize_variants
def test_kubernetes_manifests_fail_no_check(
    variant: Variant, kubernetes_report: dict[str, Any]
) -> None:
    results = kubernetes_report["results"]

    def of_variant(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [c for c in checks if Path(c["file_path"]).name.startswith(f"{variant.id}--")]

    failed = [f"{c['check_id']} {c['resource']}" for c in of_variant(results["failed_checks"])]
    assert failed == []
    assert of_variant(results["passed_checks"])
    for check in of_variant(results["skipped_checks"]):
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) > 20, f"{check['check_id']} is skipped without a reason"
