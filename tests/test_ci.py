"""The CI files of every variant with a pipeline: valid for their CI system (schema,
actionlint; checkov in test_checkov.py), least privilege, every action pinned to a commit, no
untrusted input in a script, and made of the Makefile targets that test_variants.py's
TestQuality runs for every variant against real servers: the pipeline's commands are proven on
every render."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import ROOT, tool
from variants import VARIANTS, Variant

pytestmark = [pytest.mark.fast, pytest.mark.xdist_group("rendered")]

BY_ID = {variant.id: variant for variant in VARIANTS}
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}  # v\d+\.\d+\.\d+$")
INSTALL_PROMTOOL = (
    "sudo apt-get update && sudo apt-get install --yes --no-install-recommends prometheus"
)
# What each write permission of the publish job is for: the step that needs it.
WRITES = {
    "packages": "docker/login-action",
    "id-token": "actions/attest-build-provenance",
    "attestations": "actions/attest-build-provenance",
}


def with_ci(rendered: dict[str, Path], ci: str) -> dict[str, Path]:
    """The rendered variants whose pipeline is `ci`, by variant id."""
    return {id: path for id, path in rendered.items() if BY_ID[id].has("ci", ci)}


def workflows(root: Path) -> list[Path]:
    return sorted((root / ".github" / "workflows").glob("*.yml"))


def load(path: Path) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load(path.read_text())
    return data


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as True.
    value: dict[str, Any] = workflow[True]
    return value


def check_jsonschema(schema: str, files: list[Path]) -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def commands(steps: list[dict[str, Any]]) -> list[str]:
    return [step["run"] for step in steps if "run" in step]


def test_every_variant_has_the_files_of_its_answer_only(rendered: dict[str, Path]) -> None:
    for id, root in rendered.items():
        ci = BY_ID[id].resolved["ci"]
        assert (root / ".github").exists() == (ci == "github"), id
        assert (root / ".gitlab-ci.yml").exists() == (ci == "gitlab"), id
        assert (root / "renovate.json").exists() == (ci == "gitlab"), id
        assert "check:" in (root / "Makefile").read_text(), id


def test_github_files_match_their_schemas(rendered: dict[str, Path]) -> None:
    roots = with_ci(rendered, "github").values()
    check_jsonschema(
        "vendor.github-workflows", [path for root in roots for path in workflows(root)]
    )
    check_jsonschema("vendor.dependabot", [root / ".github" / "dependabot.yml" for root in roots])


def test_gitlab_ci_matches_its_schema(rendered: dict[str, Path]) -> None:
    roots = with_ci(rendered, "gitlab").values()
    check_jsonschema("vendor.gitlab-ci", [root / ".gitlab-ci.yml" for root in roots])


def test_gitlab_dependency_updates_match_renovates_schema(rendered: dict[str, Path]) -> None:
    roots = with_ci(rendered, "gitlab").values()
    assert roots
    check_jsonschema("vendor.renovate", [root / "renovate.json" for root in roots])
    for root in roots:
        config = json.loads((root / "renovate.json").read_text())
        groups = {rule["groupName"]: rule for rule in config["packageRules"]}
        # The Python dependencies (uv's pyproject.toml and uv.lock) and every image, each kind
        # in one merge request.
        assert groups["python"]["matchManagers"] == ["pep621"]
        assert groups["images"]["matchDatasources"] == ["docker"]


def service_images(variant_id: str, root: Path) -> set[str]:
    """The images of the servers the pipeline tests against."""
    variant = BY_ID[variant_id]
    if variant.has("ci", "github"):
        services = load(root / ".github" / "workflows" / "ci.yml")["jobs"]["test"].get("services")
        return {service["image"] for service in (services or {}).values()}
    services = load(root / ".gitlab-ci.yml")["test"].get("services", [])
    return {service["name"] for service in services}


def test_ci_tests_against_the_images_compose_runs(rendered: dict[str, Path]) -> None:
    """One source for the servers' versions (copier.yml's `postgres_image`, `redis_image`):
    the pipeline's service containers are the images Compose runs."""
    questions = yaml.safe_load((ROOT / "copier.yml").read_text())
    known = {questions["postgres_image"]["default"], questions["redis_image"]["default"]}
    compared = 0
    for id, root in {**with_ci(rendered, "github"), **with_ci(rendered, "gitlab")}.items():
        images = service_images(id, root)
        assert images <= known, id
        if (root / "compose.yaml").exists() and images:
            compose = load(root / "compose.yaml")["services"]
            deployed = {compose[name]["image"] for name in ("postgres", "redis") if name in compose}
            assert images == deployed, id
            compared += 1
    assert compared > 0


def test_actionlint_finds_nothing(rendered: dict[str, Path]) -> None:
    files = [str(path) for root in with_ci(rendered, "github").values() for path in workflows(root)]
    result = subprocess.run([tool("actionlint"), *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def json_documents(text: str) -> list[dict[str, Any]]:
    """checkov's JSON output: one report, or a list of them, per framework."""
    decoder, position, reports = json.JSONDecoder(), 0, []
    while position < len(text.rstrip()):
        document, position = decoder.raw_decode(text, position)
        reports += document if isinstance(document, list) else [document]
        while position < len(text) and text[position].isspace():
            position += 1
    return reports


class TestGithubActions:
    @pytest.fixture
    def roots(self, rendered: dict[str, Path]) -> dict[str, Path]:
        return with_ci(rendered, "github")

    def test_every_action_is_pinned_to_a_commit(self, roots: dict[str, Path]) -> None:
        for root in roots.values():
            for path in workflows(root):
                for line in path.read_text().splitlines():
                    if "uses:" in line:
                        action = line.split("uses:", 1)[1].strip()
                        assert PINNED.match(action) or action.startswith("./"), f"{path}: {line}"

    def test_permissions_are_the_least_each_job_needs(self, roots: dict[str, Path]) -> None:
        for root in roots.values():
            for path in workflows(root):
                workflow = load(path)
                assert workflow["permissions"] == {"contents": "read"}, path
                for name, job in workflow["jobs"].items():
                    writes = {k for k, v in job.get("permissions", {}).items() if v == "write"}
                    used = {WRITES[w] for w in writes}
                    actions = {step.get("uses", "").split("@")[0] for step in job.get("steps", [])}
                    assert used <= actions, f"{path} {name}: {writes} without {used - actions}"
                    if writes:
                        assert (path.name, name) == ("release.yml", "publish")

    def test_no_untrusted_input_or_secret_in_a_script(self, roots: dict[str, Path]) -> None:
        for root in roots.values():
            for path in workflows(root):
                workflow = load(path)
                assert "pull_request_target" not in triggers(workflow), path
                for job in workflow["jobs"].values():
                    for script in commands(job.get("steps", [])):
                        # Every value reaches a script through the environment, never `${{ }}`.
                        assert "${{" not in script, f"{path}: {script}"
                        assert "secrets" not in script, f"{path}: {script}"

    def test_ci_runs_the_makefile_targets_with_the_chosen_servers(
        self, roots: dict[str, Path]
    ) -> None:
        for id, root in roots.items():
            jobs = load(root / ".github" / "workflows" / "ci.yml")["jobs"]
            check = commands(jobs["check"]["steps"])
            if BY_ID[id].named("has_metrics"):
                assert check.pop(0) == INSTALL_PROMTOOL, id
            assert check == ["make install", "make check"], id
            assert commands(jobs["test"]["steps"]) == ["make install", "make test"], id
            assert commands(jobs["image"]["steps"]) == ["make check-deploy"], id
            services, env = expected_servers(BY_ID[id])
            assert set(jobs["test"].get("services", {})) == services, id
            assert set(jobs["test"].get("env", {})) == env, id

    def test_release_publishes_only_after_ci(self, roots: dict[str, Path]) -> None:
        for root in roots.values():
            release = load(root / ".github" / "workflows" / "release.yml")
            assert triggers(release) == {"push": {"tags": ["v*"]}}
            assert release["jobs"]["ci"]["uses"] == "./.github/workflows/ci.yml"
            assert release["jobs"]["publish"]["needs"] == "ci"
            assert "workflow_call" in triggers(load(root / ".github" / "workflows" / "ci.yml"))


class TestGitlabCi:
    @pytest.fixture
    def pipelines(self, rendered: dict[str, Path]) -> dict[str, dict[str, Any]]:
        return {
            id: load(root / ".gitlab-ci.yml") for id, root in with_ci(rendered, "gitlab").items()
        }

    def test_jobs_run_the_makefile_targets_with_the_chosen_servers(
        self, pipelines: dict[str, dict[str, Any]]
    ) -> None:
        for id, pipeline in pipelines.items():
            assert pipeline[".uv"]["before_script"] == ["make install"]
            assert pipeline["check"]["script"][-1] == "make check", id
            assert pipeline["test"]["script"] == ["make test"], id
            assert pipeline["check-deploy"]["script"] == ["make check-deploy"], id
            services, env = expected_servers(BY_ID[id])
            names = {service["alias"] for service in pipeline["test"].get("services", [])}
            assert names == services, id
            assert set(pipeline["test"].get("variables", {})) == env, id

    def test_merge_requests_do_not_run_twice_and_tags_release(
        self, pipelines: dict[str, dict[str, Any]]
    ) -> None:
        for pipeline in pipelines.values():
            rules = pipeline["workflow"]["rules"]
            assert {"if": "$CI_COMMIT_BRANCH && $CI_OPEN_MERGE_REQUESTS", "when": "never"} in rules
            assert pipeline["release"]["rules"] == [{"if": "$CI_COMMIT_TAG =~ /^v[0-9]/"}]
            assert pipeline["release"]["needs"] == ["build", "scan"]


def expected_servers(variant: Variant) -> tuple[set[str], set[str]]:
    """The service containers of the test job, and the variables that point the tests at them."""
    services, env = set(), set()
    if variant.has("database", "postgresql"):
        services.add("postgres")
        env.add("TEST_DATABASE_URL")
    if variant.has("rate_limiter", "redis"):
        services.add("redis")
        env.add("REDIS_URL")
    return services, env


def test_the_makefile_checks_the_alert_rules_where_there_are_some(
    rendered: dict[str, Path],
) -> None:
    for id, root in rendered.items():
        makefile = (root / "Makefile").read_text()
        promtool = "promtool test rules monitoring/alerts.test.yml" in makefile
        assert promtool == BY_ID[id].named("has_metrics"), id
