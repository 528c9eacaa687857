"""Fixtures of the template's test suite: rendered and installed variants, real servers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from harness import IN_CI, install, render, run
from servers import Unavailable, fresh_database, postgres_server
from variants import VARIANTS, Variant


def unavailable(reason: str) -> NoReturn:
    """Skip a test that needs something this machine lacks; on CI that is a failure."""
    if IN_CI:
        pytest.fail(f"{reason} (a skip is a failure on CI)")
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int) -> None:
    if IN_CI and terminalreporter.stats.get("skipped"):
        terminalreporter.write_line("CI: skipped tests count as failures", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if IN_CI and reporter is not None and reporter.stats.get("skipped") and exitstatus == 0:
        session.exitstatus = 1


@dataclass
class Project:
    variant: Variant
    path: Path
    answers: dict[str, Any]

    @property
    def slug(self) -> str:
        return str(self.answers["project_slug"])

    @property
    def package(self) -> str:
        return str(self.answers["package_name"])

    def __getitem__(self, question: str) -> Any:
        return self.answers[question]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test that uses `project` once per declared variant.

    `@pytest.mark.variants(predicate)` narrows a test to the variants the predicate accepts
    (for example `lambda v: v.has("auth", "jwt")`): a feature's tests never skip elsewhere.
    """
    if "project" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("variants")
    chosen = [v for v in VARIANTS if marker is None or marker.args[0](v)]
    assert chosen, f"{metafunc.definition.nodeid}: no variant matches its variants marker"
    params = [
        pytest.param(variant, id=variant.id, marks=pytest.mark.xdist_group(variant.id))
        for variant in chosen
    ]
    metafunc.parametrize("project", params, indirect=True, scope="session")


@pytest.fixture(scope="session")
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The variant rendered by the copier CLI and installed with uv: once per session."""
    variant: Variant = request.param
    path = tmp_path_factory.mktemp(variant.id) / "service"
    render(path, variant.answers)
    answers = yaml.safe_load((path / ".copier-answers.yml").read_text())
    install(path, str(answers["python_version"]))
    return Project(variant, path, answers)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[str]:
    stack = contextlib.ExitStack()
    try:
        url = stack.enter_context(postgres_server())
    except Unavailable as error:
        unavailable(f"PostgreSQL: {error}")
    with stack:
        yield url


@pytest.fixture(scope="session")
def database_env(
    project: Project, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """DATABASE_URL (migrated) and TEST_DATABASE_URL for the variant; empty without one."""
    database = project["database"]
    if database == "none":
        yield {}
        return
    if database == "sqlite":
        folder = tmp_path_factory.mktemp(f"{project.variant.id}-db")
        env = {"DATABASE_URL": f"sqlite:///{folder / 'service.db'}"}
        migrate(project, env)
        yield env
        return
    admin = request.getfixturevalue("postgres_admin")
    with (
        fresh_database(admin, project.variant.id) as url,
        fresh_database(admin, f"{project.variant.id}-t") as test_url,
    ):
        env = {"DATABASE_URL": url, "TEST_DATABASE_URL": test_url}
        migrate(project, env)
        yield env


def migrate(project: Project, env: dict[str, str]) -> None:
    result = run(project.path, project.slug, "migrate", env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is at revision head" in result.stdout
