"""Fixtures of the template's test suite: rendered and installed variants, real servers.

Variants are rendered in process by pytest-copie's `copie_session` fixture (copier's own
`run_copy`, copy-time tasks included), so a failed render reports copier's exception. Tests
about what a user types (the README's commands, prompts in a pty, `--data` errors) use the
real `copier` CLI through `harness.render`; tests/README.md lists which tests use which.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import containers
import pytest
from harness import IN_CI, ROOT, install, render_variants, run
from pytest_copie.plugin import Copie
from servers import Unavailable, fresh_database, postgres_server
from variants import VARIANTS, Variant


def unavailable(reason: str) -> NoReturn:
    """Skip a test that needs something this machine lacks; on CI that is a failure."""
    if IN_CI:
        pytest.fail(f"{reason} (a skip is a failure on CI)")
    pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    # pytest-copie renders the template named by --template (default: the current directory);
    # this suite's template is the repository it lives in, wherever pytest is started from.
    config.option.template = str(ROOT)
    if not hasattr(config, "workerinput"):
        # The whole run's process, inherited by the xdist workers: the run's name as a user of
        # the Docker engine (containers.ensure_engine).
        os.environ[containers.RUN_PID_VARIABLE] = str(os.getpid())
    # The copy task `uv lock` needs an interpreter of the project's Python version and would
    # otherwise try to download one (unreachable here): offer pyenv's, as harness.install does.
    interpreters = [
        str(path.parent)
        for path in sorted(Path.home().glob(".pyenv/versions/3.1[0-9].*/bin/python3"))
    ]
    if interpreters:
        os.environ["PATH"] = os.pathsep.join([*interpreters, os.environ.get("PATH", "")])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int) -> None:
    container_seconds = sum(
        report.duration
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "nodeid", "").startswith(
            ("tests/test_container.py", "tests/test_compose.py")
        )
        and getattr(report, "when", None) in {"setup", "call", "teardown"}
    )
    if container_seconds:
        terminalreporter.write_line(
            f"container tests: {container_seconds:.0f} s (setup, call and teardown, all workers)"
        )
    # Figures a test records with `record_property` (Schemathesis over HTTP, memory bounds).
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, value in getattr(report, "user_properties", ()):
                terminalreporter.write_line(f"{name}: {value} ({report.nodeid})")
    if IN_CI and terminalreporter.stats.get("skipped"):
        terminalreporter.write_line("CI: skipped tests count as failures", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not hasattr(session.config, "workerinput"):
        # The whole run is over (xdist workers included): stop a dockerd the tests started.
        containers.stop_engine()
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

    def named(self, name: str) -> bool:
        """copier.yml's named condition `name` (`has_db`, `has_users`, ...) for this project."""
        return self.variant.named(name)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test that uses `project` once per declared variant.

    `@pytest.mark.variants(predicate)` narrows a test to the variants the predicate accepts
    (for example `lambda v: v.named("has_users")`): a feature's tests never skip elsewhere.
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


# Fixtures that install a variant, start servers or a Docker engine: not in the fast tier.
SLOW_FIXTURES = {"project", "database_env", "postgres_admin", "engine", "copie_session"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses an installed variant `installs`; a test marked `fast` that
    needs one, a server or the Docker engine is an error of the suite, not a slow fast tier."""
    for item in items:
        used = SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if "project" in used:
            item.add_marker(pytest.mark.installs)
        if used and item.get_closest_marker("fast"):
            raise pytest.UsageError(
                f"{item.nodeid} is marked fast but uses {', '.join(sorted(used))}"
            )


@pytest.fixture(scope="session")
def project(request: pytest.FixtureRequest, copie_session: Copie) -> Project:
    """The variant rendered by copier (through pytest-copie) and installed with uv: once per
    session and xdist worker."""
    variant: Variant = request.param
    result = copie_session.copy(extra_answers=dict(variant.answers))
    if result.exception is not None or result.project_dir is None:
        raise AssertionError(f"{variant.id}: copier failed ({result.exit_code})") from (
            result.exception if isinstance(result.exception, Exception) else None
        )
    install(result.project_dir, str(result.answers["python_version"]))
    return Project(variant, result.project_dir, result.answers)


@pytest.fixture(scope="session")
def rendered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Every variant's files by variant id, rendered once per run (in process, copy-time tasks
    skipped: `harness.render_variants`). The xdist workers share one render: the first to ask
    renders under a lock, the others wait for it and read the same files."""
    run_directory = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):
        run_directory = run_directory.parent  # pytest-N/popen-gwX: pytest-N is this run's
    target = run_directory / "render-all"
    with (run_directory / "render-all.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = run_directory / "render-all.done"
        if not done.exists():
            for _ in render_variants(target):
                pass
            done.touch()
    return {variant.id: target / variant.id for variant in VARIANTS}


@pytest.fixture(scope="session")
def engine() -> None:
    """A Docker engine (started when none runs; stopped when the run ends)."""
    try:
        containers.ensure_engine()
    except containers.EngineUnavailable as error:
        unavailable(f"Docker engine: {error}")


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
