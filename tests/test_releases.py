"""`python3 dev.py tag-releases`: the release tags made from releases.toml, in a repository
built here commit by commit (a release branch merged into main, as a release lands).

Every release is checked before a tag is made; run again, it changes nothing; each refusal is
one line naming the release and what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness import ROOT

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Release Test",
    "GIT_AUTHOR_EMAIL": "release@example.com",
    "GIT_COMMITTER_NAME": "Release Test",
    "GIT_COMMITTER_EMAIL": "release@example.com",
}


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, env={**os.environ, **GIT_ENV}
    )
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout.strip()


def commit(repo: Path, message: str, files: dict[str, str]) -> str:
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def release(version: str, commit: str | None = None) -> str:
    line = f'commit = "{commit}"\n' if commit else ""
    return f'[[release]]\nversion = "{version}"\n{line}\n'


def tag_releases(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "dev.py", "tag-releases"], cwd=repo, capture_output=True, text=True
    )


def tags(repo: Path) -> dict[str, str]:
    listed = git(repo, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/tags")
    return dict(line.split() for line in listed.splitlines())


@pytest.fixture
def landed(tmp_path: Path) -> tuple[Path, str, str]:
    """main: 0.1.0 released; then a branch that adds 0.2.0 without a commit, merged with a
    merge commit. Returns the repository, 0.1.0's commit and the merge commit."""
    repo = tmp_path / "template"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch", "main")
    shutil.copy(ROOT / "dev.py", repo / "dev.py")
    first = commit(repo, "0.1.0", {"template.txt": "one\n"})
    commit(repo, "record 0.1.0", {"releases.toml": release("0.1.0", first)})
    git(repo, "switch", "--quiet", "-c", "work")
    commit(repo, "0.2.0", {"releases.toml": release("0.1.0", first) + release("0.2.0")})
    commit(repo, "a fix after the entry", {"template.txt": "two\n"})
    git(repo, "switch", "--quiet", "main")
    commit(repo, "meanwhile on main", {"other.txt": "x\n"})
    git(repo, "merge", "--quiet", "--no-ff", "-m", "land 0.2.0", "work")
    return repo, first, git(repo, "rev-parse", "HEAD")


def test_tags_each_release_at_its_commit_and_the_newest_at_its_landing(
    landed: tuple[Path, str, str],
) -> None:
    repo, first, merge = landed
    result = tag_releases(repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"0.1.0 -> {first[:12]} (tagged)",
        f"0.2.0 -> {merge[:12]} (tagged)",
    ]
    assert tags(repo) == {"0.1.0": first, "0.2.0": merge}
    # The merge holds the fix made after the entry was written: the release is what landed.
    assert git(repo, "show", "0.2.0:template.txt") == "two"

    again = tag_releases(repo)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"0.1.0 -> {first[:12]} (already tagged)",
        f"0.2.0 -> {merge[:12]} (already tagged)",
    ]
    assert tags(repo) == {"0.1.0": first, "0.2.0": merge}

    # Later work on main does not move the release.
    commit(repo, "after the release", {"template.txt": "three\n"})
    assert tag_releases(repo).returncode == 0
    assert tags(repo) == {"0.1.0": first, "0.2.0": merge}


def test_a_tag_at_another_commit_is_refused_before_any_tag_is_made(
    landed: tuple[Path, str, str],
) -> None:
    repo, first, merge = landed
    git(repo, "tag", "0.2.0", first)
    result = tag_releases(repo)
    assert result.returncode == 1
    assert result.stderr == (
        f"dev.py tag-releases: tag 0.2.0 points at {first[:12]}, releases.toml says "
        f"{merge[:12]}: delete the wrong tag (`git tag -d 0.2.0`) or fix releases.toml\n"
    )
    assert tags(repo) == {"0.2.0": first}  # 0.1.0, which was fine, was not tagged either


@pytest.mark.parametrize(
    ("releases", "message"),
    [
        (
            release("0.1.0", "0" * 40),
            f"release 0.1.0: commit {'0' * 40} is not in this clone (a shallow clone? "
            "`git fetch --unshallow`, then run this again)",
        ),
        (release("0.1.0", "abc123"), "releases.toml: 0.1.0's commit is not a full 40-digit hash"),
        (
            release("0.1.0") + release("0.2.0"),
            "releases.toml: 0.1.0 has no commit (only the newest may)",
        ),
        (
            release("0.2.0", "0" * 40) + release("0.1.0"),
            "releases.toml: 0.1.0 is not newer than the release before it",
        ),
        (release("v0.3"), "releases.toml: 'v0.3' is not a release version like 0.3.0"),
        ("[[release]\n", "releases.toml is not valid TOML"),
    ],
    ids=["unknown-commit", "short-hash", "commit-missing", "order", "not-pep440", "toml"],
)
def test_a_bad_releases_file_is_refused_in_one_line(
    tmp_path: Path, releases: str, message: str
) -> None:
    repo = tmp_path / "template"
    repo.mkdir()
    git(repo, "init", "--quiet")
    shutil.copy(ROOT / "dev.py", repo / "dev.py")
    commit(repo, "releases", {"releases.toml": releases})
    result = tag_releases(repo)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"dev.py tag-releases: {message}"), line
    assert tags(repo) == {}


def test_the_newest_release_must_be_committed(tmp_path: Path) -> None:
    repo = tmp_path / "template"
    repo.mkdir()
    git(repo, "init", "--quiet")
    shutil.copy(ROOT / "dev.py", repo / "dev.py")
    first = commit(repo, "0.1.0", {"releases.toml": "# none yet\n"})
    (repo / "releases.toml").write_text(release("0.1.0", first) + release("0.2.0"))
    result = tag_releases(repo)
    assert result.returncode == 1
    assert result.stderr == (
        "dev.py tag-releases: release 0.2.0 has no commit and no commit of this branch lists "
        "it in releases.toml: commit releases.toml first\n"
    )


def test_outside_a_git_clone(tmp_path: Path) -> None:
    shutil.copy(ROOT / "dev.py", tmp_path / "dev.py")
    (tmp_path / "releases.toml").write_text(release("0.1.0", "0" * 40))
    result = subprocess.run(
        [sys.executable, "dev.py", "tag-releases"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)},
    )
    assert result.returncode == 1
    assert result.stderr == f"dev.py tag-releases: {tmp_path} is not a git clone: tags need one\n"
