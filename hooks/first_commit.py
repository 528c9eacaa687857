"""Copier task (copy only): make the new project a git repository with its files committed.

`copier update` works only in a git repository with a clean tree, and a repository from the
first minute also shows later what the team changed since the copy (`git diff` against the
first commit). The task commits nothing when the destination is inside a repository already
(a monorepo: the team commits the new directory the way it commits everything else) or when
git does not know who commits (`user.name` and `user.email`): then it prints the commands to
run. `.env` (secrets) and `.venv` are git-ignored, so they are never in the commit. A failure
never fails the copy: the files are all written by then.

Usage: first_commit.py TEMPLATE_VERSION (in the generated project's directory)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

TEMPLATE = "copier-hardened-fastapi"


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)


def configured(key: str) -> bool:
    return bool(git("config", "--get", key).stdout.strip())


def identity_known() -> bool:
    """Whether git has a name and an e-mail address for both author and committer, from the
    environment or the configuration (never the ones git guesses from the host name)."""
    return all(
        os.environ.get(f"GIT_{role}_{part}") or configured(f"user.{part.lower()}")
        for role in ("AUTHOR", "COMMITTER")
        for part in ("NAME", "EMAIL")
    )


def main(argv: list[str]) -> int:
    version = argv[0] if argv and argv[0] else "an unversioned copy"
    message = f"Generated from {TEMPLATE} {version}"
    commands = f'git init && git add --all && git commit -m "{message}"'
    if shutil.which("git") is None:
        print(f"first_commit: git is not installed; `copier update` needs it: {commands}")
        return 0
    inside = git("rev-parse", "--show-toplevel")
    if inside.returncode == 0:
        print(
            f"first_commit: inside the git repository {inside.stdout.strip()}: "
            "nothing committed (commit the new files there)"
        )
        return 0
    if not identity_known():
        print(
            "first_commit: git does not know who commits, so the project is not a repository "
            'yet: git config --global user.name "Your Name" && git config --global user.email '
            f"you@example.com, then: {commands}"
        )
        return 0
    steps = (
        ("init", "--quiet"),
        ("add", "--all"),
        ("commit", "--quiet", "--no-verify", "-m", message),
    )
    for step in steps:
        result = git(*step)
        if result.returncode != 0:
            reason = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:]
            print(
                f"first_commit: git {step[0]} failed ({' '.join(reason)}); run: {commands}",
                file=sys.stderr,
            )
            return 0
    head = git("rev-parse", "--short", "HEAD").stdout.strip()
    print(f'first_commit: a git repository with its first commit {head} "{message}"')
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
