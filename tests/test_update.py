"""`copier update` from each earlier release to the current template, as a user runs it.

The releases are listed in releases.toml (version and commit); these tests do not need git
tags: they copy this checkout (uncommitted changes committed there), tag the releases there with
`python3 dev.py tag-releases`, and tag the checkout itself with the version it is released as
(the newest release when it has no commit yet, else `[next]`). Each update test then:

1. copies a project at an old release (pytest-copie's `copie.copy(..., vcs_ref=...)`), commits it,
   installs it, migrates it and stores data through its own HTTP API;
2. makes the edits a team typically makes (a new route module and its registration, a changed
   setting default, a README paragraph, a note under the README's "Notes for this service"
   where it has that section, an extra dependency) and commits them;
3. updates to the next version (`copie.update`), then checks that the edits are all there, no
   conflict marker is left, `.env` only gained keys, the files are exactly those of a fresh copy
   of the next version with the same edits, and the updated project installs, migrates, boots
   and still serves the data stored before the update; on the longest jump of each project
   kind it also passes its own tests.

A later release that adds a README section is made in a copy of the repository: the team's
note at the README's end meets no conflict. The same-line conflict and the relative template
path are tested through the `copier` CLI, with the commands of the README's upgrade guide.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from auth_helpers import credentials
from conftest import Project, unavailable
from harness import ROOT, install, run, serving, tool
from pytest_copie.plugin import Copie, Result
from servers import Unavailable, fresh_database, redis_server
from variants import Variant

RELEASES_TOML: dict[str, Any] = tomllib.loads((ROOT / "releases.toml").read_text())
# The releases made before the current work (each with its commit): the versions updated from.
RELEASES: list[dict[str, str]] = [r for r in RELEASES_TOML["release"] if "commit" in r]
# The version the current work is released as: the newest release while its commit is not
# recorded (it is the commit that lands it), otherwise the one `[next]` names.
NEXT: str = (
    RELEASES_TOML["release"][-1]["version"]
    if "commit" not in RELEASES_TOML["release"][-1]
    else RELEASES_TOML["next"]["version"]
)
FIRST, PREVIOUS = RELEASES[0]["version"], RELEASES[-1]["version"]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Update Test",
    "GIT_AUTHOR_EMAIL": "update@example.com",
    "GIT_COMMITTER_NAME": "Update Test",
    "GIT_COMMITTER_EMAIL": "update@example.com",
}
ROUTE_MODULE = '''"""A route of the team's own: kept by every template update."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/greetings", tags=["greetings"])


@router.get("")
async def greet() -> dict[str, str]:
    return {"hello": "team"}
'''
# The generated project's own check for conflict markers (run without its conftest, uninstalled).
CHECK = ["tests/test_repository.py"]
README_PARAGRAPH = "Owned by the payments team; page #payments-oncall out of hours."
# The README's last section, which the template never writes below, and a team's note there.
NOTES_HEADING = "## Notes for this service"
TEAM_NOTE = "Releases go out with the payments train; ask #payments-release before a deploy."


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **GIT_ENV}
    )
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def commit_all(project: Path, message: str) -> None:
    """Commit everything in `project`, making it a git repository first if it is not one (a
    copy made since 0.3.0 is one, its files committed, where git knows who commits)."""
    if not (project / ".git").exists():
        git(project, "init", "--quiet")
    git(project, "add", "--all")
    if git(project, "status", "--porcelain"):
        git(project, "commit", "--quiet", "-m", message)


def copier_update(project: Path) -> subprocess.CompletedProcess[str]:
    """The upgrade guide's command, as a user types it."""
    return subprocess.run(
        [tool("copier"), "update", "--defaults", "--trust"],
        cwd=project,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout as a template repository with its releases tagged, and the next version
    tagged on the current work (uncommitted changes included)."""
    repo = tmp_path_factory.mktemp("template") / "copier-hardened-fastapi"
    # A clone of its own, so that the commit and the tags below stay there (a copy of a git
    # worktree's `.git` file would point back at the shared repository); then the working
    # tree's files, uncommitted changes included.
    git(ROOT, "clone", "--quiet", "--no-checkout", str(ROOT), str(repo))
    shutil.copytree(
        ROOT,
        repo,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "my-service",
            ".mypy_cache",
            ".ruff_cache",
            ".pytest_cache",
            "__pycache__",
        ),
    )
    git(repo, "add", "--all")
    git(repo, "commit", "--allow-empty", "--no-verify", "-m", "the current work")
    tagged = subprocess.run(
        [sys.executable, "dev.py", "tag-releases"], cwd=repo, capture_output=True, text=True
    )
    if tagged.returncode != 0:
        pytest.fail(
            f"{tagged.stderr.strip()} (the update tests need the repository's full history)"
        )
    git(repo, "tag", "--force", NEXT, "HEAD")
    return repo


@dataclass
class Scenario:
    id: str
    release: str
    answers: dict[str, Any]  # at the old release
    new_answers: dict[str, Any]  # questions the update adds (the rest take their defaults)
    # Files where the template changed the very lines the team's edit sits between, so that
    # copier must leave conflict markers (the test resolves them as the upgrade guide says).
    conflicts: tuple[str, ...] = ()
    # Whether the updated project runs its own whole suite. Every scenario checks that the
    # update produced exactly a fresh copy of the new version plus the team's edits, which
    # the fresh copies' suites (tests/test_variants.py) prove; the suite run here, once per
    # project kind, on the longest jump, proves that proof holds for an updated tree too.
    runs_own_suite: bool = False


ALL_ON = {"auth": "jwt", "rate_limiter": "redis", "observability": ["prometheus", "otel", "sentry"]}
SCENARIOS = [
    Scenario("default-from-first", FIRST, {}, {}, runs_own_suite=True),
    Scenario("default-from-previous", PREVIOUS, {}, {}),
    # 0.2.0 added tracing's `instrument_app(app, settings)` right before `return app`, where
    # the team registered its router: both inserted a line at the same place.
    Scenario(
        "pg-redis-all-obs-from-first",
        FIRST,
        {"database": "postgresql"},
        ALL_ON,
        conflicts=("src/my_service/main.py",),
        runs_own_suite=True,
    ),
    Scenario(
        "pg-redis-all-obs-from-previous",
        PREVIOUS,
        {"database": "postgresql", **ALL_ON, "python_version": "3.11"},
        {},
    ),
    Scenario("nodb-from-first", FIRST, {"database": "none"}, {}, runs_own_suite=True),
    Scenario("nodb-from-previous", PREVIOUS, {"database": "none", "auth": "api_key"}, {}),
]


def project_of(result: Result, scenario: Scenario) -> Project:
    assert result.exception is None, result.exception
    assert result.project_dir is not None
    return Project(Variant(scenario.id), result.project_dir, dict(result.answers))


@contextlib.contextmanager
def database_for(
    project: Project, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """The environment that points the project at its database (kept across the update)."""
    database = project["database"]
    if database == "sqlite":
        yield {"DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}"}
    elif database == "postgresql":
        admin = request.getfixturevalue("postgres_admin")
        with (
            fresh_database(admin, f"{project.variant.id}-u") as url,
            fresh_database(admin, f"{project.variant.id}-ut") as test_url,
        ):
            yield {"DATABASE_URL": url, "TEST_DATABASE_URL": test_url}
    else:
        yield {}


@contextlib.contextmanager
def redis_for(scenario: Scenario) -> Iterator[dict[str, str]]:
    """REDIS_URL of a real server when the project has (or gains) the Redis limiter."""
    if {**scenario.answers, **scenario.new_answers}.get("rate_limiter") != "redis":
        yield {}
        return
    try:
        with redis_server() as url:
            yield {"REDIS_URL": url}
    except Unavailable as error:
        unavailable(f"Redis: {error}")


def migrate(project: Project, env: dict[str, str]) -> None:
    if project["database"] == "none":
        return
    result = run(project.path, project.slug, "migrate", env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def store_item(project: Project, env: dict[str, str]) -> str | None:
    """Create an item through the running service's API; its name (None without a database)."""
    if project["database"] == "none":
        return None
    name = f"kept across the update {project.variant.id}"
    with serving(project.path, project.slug, env) as service:
        headers = credentials(project, service) if "auth" in project.answers else {}
        response = httpx.post(
            f"{service.url}/api/v1/items", json={"name": name}, headers=headers, timeout=30
        )
        assert response.status_code == 201, response.text
    return name


def edit_like_a_team(project: Path, package: str, note: bool | None = None) -> bool:
    """The team's edits; whether a note was appended to the README (by default when it has
    the notes section, which releases before it lack)."""
    (project / "src" / package / "greetings.py").write_text(ROUTE_MODULE)
    main = project / "src" / package / "main.py"
    text = main.read_text()
    text = text.replace(
        "from .docs import install_docs\n",
        "from .docs import install_docs\nfrom .greetings import router as greetings_router\n",
    )
    text = text.replace(
        "    return app\n", "    app.include_router(greetings_router)\n    return app\n"
    )
    main.write_text(text)
    settings = project / "src" / package / "settings.py"
    settings.write_text(settings.read_text().replace("default=1_048_576", "default=2_097_152"))
    readme = project / "README.md"
    lines = readme.read_text().splitlines(keepends=True)
    readme.write_text("".join([*lines[:2], f"{README_PARAGRAPH}\n\n", *lines[2:]]))
    if note is None:
        note = NOTES_HEADING in readme.read_text()
    if note:
        readme.write_text(f"{readme.read_text()}\n{TEAM_NOTE}\n")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            '    "fastapi>=0.165,<1",\n', '    "fastapi>=0.165,<1",\n    "humanize>=4.9",\n'
        )
    )
    assert "greetings_router" in main.read_text() and "2_097_152" in settings.read_text()
    assert "humanize" in pyproject.read_text()
    return note


def recorded_version(project: Path) -> str:
    """The template version the answers file records (pytest-copie's answers omit it)."""
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return str(answers["_commit"])


def keep_both_sides(path: Path) -> None:
    """Resolve each conflict the way the upgrade guide says for two added lines: keep the
    template's lines, then the team's."""
    resolved: list[str] = []
    ours: list[str] = []
    theirs: list[str] = []
    side = ""
    for line in path.read_text().splitlines(keepends=True):
        if line.startswith("<" * 7):
            side, ours, theirs = "ours", [], []
        elif side == "ours" and line.rstrip("\n") == "=" * 7:
            side = "theirs"
        elif side == "theirs" and line.startswith(">" * 7):
            resolved += theirs + [kept for kept in ours if kept not in theirs]
            side = ""
        else:
            {"ours": ours, "theirs": theirs}.get(side, resolved).append(line)
    path.write_text("".join(resolved))


# What a copy makes that is not the template's text: secrets, the lock resolved on the day,
# the repository, and what installing and running the project leave.
NOT_RENDERED = {".env", "uv.lock", ".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache"}


def differences_from_a_fresh_copy(
    updated: Project, template_repo: Path, copie: Copie, noted: bool, version: str = NEXT
) -> list[str]:
    """The files of the updated project that differ from a fresh copy of the new version with
    the same answers and the team's edits (`noted`: the README note among them): [] when the
    update merged everything right."""
    answers = {key: value for key, value in updated.answers.items() if not key.startswith("_")}
    fresh = copie.copy(extra_answers=answers, template_dir=template_repo, vcs_ref=version)
    assert fresh.exception is None and fresh.project_dir is not None, fresh.exception
    edit_like_a_team(fresh.project_dir, updated.package, note=noted)

    def files(root: Path) -> dict[str, bytes]:
        return {
            str(path.relative_to(root)): path.read_bytes()
            for path in root.rglob("*")
            if path.is_file() and not NOT_RENDERED.intersection(path.relative_to(root).parts)
        }

    ours, theirs = files(updated.path), files(fresh.project_dir)
    return sorted(
        name for name in ours.keys() | theirs.keys() if ours.get(name) != theirs.get(name)
    )


def conflict_markers(project: Path) -> list[str]:
    found = []
    for path in project.rglob("*"):
        if ".venv" in path.parts or ".git" in path.parts or not path.is_file():
            continue
        with contextlib.suppress(UnicodeDecodeError):
            for line in path.read_text().splitlines():
                if line.startswith(("<" * 7, ">" * 7)):
                    found.append(f"{path.relative_to(project)}: {line}")
    return found


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_update_keeps_edits_env_and_data(
    scenario: Scenario,
    template_repo: Path,
    copie: Copie,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    old = project_of(
        copie.copy(
            extra_answers=scenario.answers, template_dir=template_repo, vcs_ref=scenario.release
        ),
        scenario,
    )
    assert recorded_version(old.path) == scenario.release
    commit_all(old.path, f"generated at {scenario.release}")
    install(old.path, str(old["python_version"]))
    env_before = (old.path / ".env").read_text()

    with database_for(old, request, tmp_path) as db_env, redis_for(scenario) as redis_env:
        env = {**db_env, **redis_env}
        migrate(old, env)
        stored = store_item(old, env)

        noted = edit_like_a_team(old.path, old.package)
        commit_all(old.path, "the team's own changes")

        updated = project_of(
            copie.update(
                Result(project_dir=old.path, answers=old.answers),
                extra_answers=scenario.new_answers,
                vcs_ref=NEXT,
            ),
            scenario,
        )
        assert recorded_version(updated.path) == NEXT
        conflicted = sorted({marker.split(":")[0] for marker in conflict_markers(updated.path)})
        assert conflicted == sorted(scenario.conflicts)
        for name in conflicted:
            keep_both_sides(updated.path / name)
        assert conflict_markers(updated.path) == []
        package = updated.path / "src" / updated.package
        assert (package / "greetings.py").read_text() == ROUTE_MODULE
        assert "app.include_router(greetings_router)" in (package / "main.py").read_text()
        assert "default=2_097_152" in (package / "settings.py").read_text()
        readme = (updated.path / "README.md").read_text()
        assert README_PARAGRAPH in readme
        assert readme.endswith(f"{TEAM_NOTE}\n") == noted
        assert '"humanize>=4.9"' in (updated.path / "pyproject.toml").read_text()
        env_after = (updated.path / ".env").read_text()
        assert env_after.startswith(env_before), ".env lines may only be added"
        added = [
            line.split("=")[0]
            for line in env_after.removeprefix(env_before).splitlines()
            if line and not line.startswith("#")
        ]
        # Secrets the new version needs and .env lacks: JWT's, the backups' signing key, and
        # the Compose stack's database password (compose.yaml is new in 0.3.0, and the
        # default deploys with it).
        expected = ["JWT_SECRET_KEY"] if updated["auth"] in {"jwt", "jwt_api_key"} else []
        if "JWT_SECRET_KEY=" in env_before:
            expected = []
        # Backups are signed since 0.3.0.
        if updated.answers.get("backups") and "BACKUP_SIGNING_KEY=" not in env_before:
            expected.append("BACKUP_SIGNING_KEY")
        if updated["database"] == "postgresql" and "compose" in updated.answers.get(
            "deployment", []
        ):
            expected.append("POSTGRES_PASSWORD")
        assert added == expected

        assert differences_from_a_fresh_copy(updated, template_repo, copie, noted) == []

        install(updated.path, str(updated["python_version"]))
        migrate(updated, env)
        if scenario.runs_own_suite:
            own = run(updated.path, "pytest", "-q", "-p", "no:cacheprovider", env=env, timeout=900)
            assert own.returncode == 0, own.stdout[-6000:] + own.stderr[-3000:]
        with serving(updated.path, updated.slug, env) as service:
            assert httpx.get(f"{service.url}/api/v1/greetings").json() == {"hello": "team"}
            if stored is not None:
                headers = credentials(updated, service, role="viewer")
                page = httpx.get(f"{service.url}/api/v1/items", headers=headers, timeout=30)
                assert page.status_code == 200, page.text
                assert stored in [item["name"] for item in page.json()["items"]]

        commit_all(updated.path, f"update to {NEXT}")
        second = copie.update(
            Result(project_dir=updated.path, answers=updated.answers), vcs_ref=NEXT
        )
        assert second.exception is None, second.exception
        assert (updated.path / ".env").read_text() == env_after, "a second update adds nothing"


# A release after the current work, made only in a copy of the repository (the other tests
# take the newest release of template_repo, which must stay NEXT).
LATER = "99.0.0"
LATER_SECTION = "## A section of a later release\n\nWhat the later release documents.\n\n"


@pytest.fixture(scope="module")
def later_template_repo(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """template_repo (its tags included) with one more release, LATER, whose README gains a
    section right above the notes section, where a release adds one."""
    repo = tmp_path_factory.mktemp("later") / "copier-hardened-fastapi"
    git(template_repo.parent, "clone", "--quiet", str(template_repo), str(repo))
    readme = repo / "template" / "README.md.jinja"
    text = readme.read_text()
    assert text.count(NOTES_HEADING) == 1, "the README template has no notes section"
    readme.write_text(text.replace(NOTES_HEADING, LATER_SECTION + NOTES_HEADING))
    git(repo, "commit", "--quiet", "--all", "--no-verify", "-m", "a README section")
    git(repo, "tag", LATER)
    return repo


def test_notes_at_the_readme_end_meet_no_section_a_release_adds(
    later_template_repo: Path, copie: Copie
) -> None:
    copied = copie.copy(template_dir=later_template_repo, vcs_ref=NEXT)
    assert copied.exception is None and copied.project_dir is not None, copied.exception
    project = Project(Variant("default"), copied.project_dir, dict(copied.answers))
    commit_all(project.path, f"generated at {NEXT}")
    assert edit_like_a_team(project.path, project.package), "the notes section is missing"
    commit_all(project.path, "the team's own changes")

    updated = copie.update(Result(project_dir=project.path, answers=project.answers), vcs_ref=LATER)
    assert updated.exception is None, updated.exception
    assert recorded_version(project.path) == LATER
    assert conflict_markers(project.path) == []
    readme = (project.path / "README.md").read_text()
    assert readme.endswith(f"{TEAM_NOTE}\n")
    assert README_PARAGRAPH in readme
    assert LATER_SECTION + NOTES_HEADING in readme
    assert differences_from_a_fresh_copy(project, later_template_repo, copie, True, LATER) == []


def changed_line(template_repo: Path, copie: Copie) -> tuple[str, str]:
    """A line of the default project that the template changed since the previous release:
    (file, line as the previous release wrote it)."""
    before = copie.copy(template_dir=template_repo, vcs_ref=PREVIOUS).project_dir
    after = copie.copy(template_dir=template_repo, vcs_ref=NEXT).project_dir
    assert before is not None and after is not None
    for path in sorted(before.rglob("*.py")):
        new = after / path.relative_to(before)
        if not new.exists():
            continue
        old_lines, new_lines = path.read_text().splitlines(), new.read_text().splitlines()
        for line in old_lines:
            code = len(line.strip()) > 20 and not line.startswith(("import", "from"))
            if code and line not in new_lines and old_lines.count(line) == 1:
                return str(path.relative_to(before)), line
    pytest.fail("no line changed between the previous release and now")


def test_a_same_line_conflict_is_caught_by_the_projects_own_checks(
    template_repo: Path, copie: Copie, tmp_path: Path
) -> None:
    name, line = changed_line(template_repo, copie)
    project = tmp_path / "svc"
    copier = [tool("copier"), "copy", "--trust", "--defaults", "--vcs-ref", PREVIOUS]
    subprocess.run([*copier, str(template_repo), str(project)], check=True, capture_output=True)
    commit_all(project, "generated")
    edited = project / name
    edited.write_text(edited.read_text().replace(line, f"{line}  # the team's own change"))
    commit_all(project, "the team's own change")
    update = copier_update(project)
    assert update.returncode == 0, update.stderr  # copier reports the conflict only in the file
    assert any(marker.startswith(name) for marker in conflict_markers(project)), update.stderr
    check = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--noconftest", "-p", "no:cacheprovider", *CHECK],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 1, check.stdout + check.stderr
    assert name in check.stdout and "resolve these conflicts" in check.stdout


def test_a_relative_template_path_is_recorded_so_update_works(
    template_repo: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    relative = os.path.relpath(template_repo, work)
    assert not Path(relative).is_absolute()
    env = {**os.environ, "PWD": str(work)}
    # Copied at the next version: the path is recorded by a copy-time task it brings.
    copy = subprocess.run(
        [tool("copier"), "copy", "--trust", "--defaults", relative, "svc"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert copy.returncode == 0, copy.stderr
    project = work / "svc"
    answers = (project / ".copier-answers.yml").read_text()
    assert re.search(rf'^_src_path: "{re.escape(str(template_repo))}"$', answers, re.M), answers
    commit_all(project, "generated")
    env_before = (project / ".env").read_text()
    update = copier_update(project)
    assert update.returncode == 0, update.stderr
    assert f"_commit: {NEXT}" in (project / ".copier-answers.yml").read_text()
    # The copies copier renders to compare (tasks included) write a `.env` of their own and
    # throw it away: only what happened to the project's `.env` is said.
    assert (project / ".env").read_text() == env_before
    said = update.stdout + update.stderr
    assert "Wrote .env" not in said, said
    assert ".env exists already and sets every secret: left unchanged" in said, said


def readme_commands(prefix: str) -> list[list[str]]:
    """The commands of the README's "Updating a generated project" section that start with
    `prefix`, as written (the trailing comments dropped)."""
    section = (ROOT / "README.md").read_text().split("## Updating a generated project")[1]
    section = section.split("\n## ")[0]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for line in block.splitlines():
            if line.startswith(prefix):
                commands.append(line.split("#")[0].split())
    assert commands, f"no `{prefix}` command in README.md's update section"
    return commands


def test_the_readme_update_commands_work_in_a_fresh_clone_without_tags(
    template_repo: Path, tmp_path: Path
) -> None:
    """A clone the tags did not travel with: the README's `tag-releases`, then its pinned and
    its plain `copier update`, as written (`uvx copier` is the pinned copier)."""
    clone = tmp_path / "copier-hardened-fastapi"
    git(tmp_path, "clone", "--quiet", "--no-tags", str(template_repo), str(clone))
    assert git(clone, "tag") == ""
    [tag_releases] = readme_commands("python3 dev.py tag-releases")
    plain, pinned = readme_commands("uvx copier update")
    assert "--vcs-ref" not in plain and pinned[pinned.index("--vcs-ref") + 1] == PREVIOUS

    def run_as_written(command: list[str], cwd: Path) -> str:
        argv = [sys.executable, *command[1:]] if command[0] == "python3" else command
        if command[:2] == ["uvx", "copier"]:
            argv = [tool("copier"), *command[2:]]
        result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"
        return result.stdout + result.stderr

    first = run_as_written(tag_releases, clone)
    released = [r["version"] for r in RELEASES] + [NEXT]
    assert [line.split()[0] for line in first.splitlines()] == released
    assert all(line.endswith("(tagged)") for line in first.splitlines()), first
    again = run_as_written(tag_releases, clone)
    assert all(line.endswith("(already tagged)") for line in again.splitlines()), again
    assert sorted(git(clone, "tag").split()) == sorted(released)

    project = tmp_path / "svc"
    copier = [tool("copier"), "copy", "--trust", "--defaults", "--vcs-ref", FIRST]
    subprocess.run([*copier, str(clone), str(project)], check=True, capture_output=True)
    commit_all(project, f"generated at {FIRST}")

    run_as_written(pinned, project)
    assert recorded_version(project) == PREVIOUS
    commit_all(project, f"update to {PREVIOUS}")
    output = run_as_written(plain, project)
    assert "No git tags found" not in output
    assert recorded_version(project) == NEXT, "the plain update takes the newest release"
    # The clone tags NEXT where releases.toml first lists it, which may come before the
    # README's update guide became docs/updating.md.
    guide = project / "docs" / "updating.md"
    text = (guide if guide.exists() else project / "README.md").read_text()
    assert f"copier-hardened-fastapi\n{NEXT};" in text
    assert conflict_markers(project) == []


def copy_with_tasks(template: Path, dest: Path, env: dict[str, str]) -> str:
    """`copier copy` of the template's newest release with its copy-time tasks; what it
    printed."""
    command = [tool("copier"), "copy", "--trust", "--defaults"]
    result = subprocess.run(
        [*command, str(template), str(dest)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_a_copy_is_a_git_repository_with_its_files_committed(
    template_repo: Path, tmp_path: Path
) -> None:
    project = tmp_path / "svc"
    said = copy_with_tasks(template_repo, project, {**os.environ, **GIT_ENV})
    assert f'"Generated from copier-hardened-fastapi {NEXT}"' in said, said
    assert git(project, "rev-list", "--count", "HEAD").strip() == "1"
    assert git(project, "status", "--porcelain", "--ignored=no") == ""  # nothing left out
    tracked = git(project, "ls-files").split()
    assert {"uv.lock", ".copier-answers.yml", ".gitignore", "pyproject.toml"} <= set(tracked)
    assert ".env" not in tracked and (project / ".env").exists()
    (project / ".venv").mkdir()
    (project / ".venv" / "marker").write_text("x")
    assert git(project, "check-ignore", ".env", ".venv/marker").split() == [".env", ".venv/marker"]
    # Ready for `copier update` as it is: a git repository with a clean tree.
    update = copier_update(project)
    assert update.returncode == 0, update.stderr


def test_a_copy_inside_a_repository_or_without_a_git_identity_commits_nothing(
    template_repo: Path, tmp_path: Path
) -> None:
    monorepo = tmp_path / "monorepo"
    monorepo.mkdir()
    git(monorepo, "init", "--quiet")
    said = copy_with_tasks(template_repo, monorepo / "services" / "svc", {**os.environ, **GIT_ENV})
    assert not (monorepo / "services" / "svc" / ".git").exists()
    assert f"first_commit: inside the git repository {monorepo}" in said, said
    assert git(monorepo, "rev-list", "--all") == ""  # the team's repository is left alone

    # No user.name or user.email anywhere git looks.
    env = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}
    env |= {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    project = tmp_path / "svc"
    said = copy_with_tasks(template_repo, project, env)
    assert not (project / ".git").exists()
    line = next(line for line in said.splitlines() if line.startswith("first_commit:"))
    assert "git does not know who commits" in line
    assert 'git init && git add --all && git commit -m "Generated from' in line
