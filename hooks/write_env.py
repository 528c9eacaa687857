"""Copier task: `.env` for local development, with a generated value for every secret.

On `copier copy`, `.env` starts as a copy of `.env.example` and each secret variable named on
the command line gets a freshly generated value. On `copier update`, an existing `.env` keeps
every line it has; a named secret it does not define yet (a feature the update added) is
appended with a generated value, so no secret falls back to a value written in the source.
Running it again changes nothing. Secrets never enter `.copier-answers.yml` (`.env` is
git-ignored and written readable only by its owner).

Usage: write_env.py [SECRET_VARIABLE ...] (empty arguments are ignored)

A name written `compose:NAME` is a secret of the Compose stack (the database password), read
by compose.yaml rather than by the service's settings: `.env.example` does not list it, and it
is added at the end of `.env` under its own comment.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path


def new_secret() -> str:
    return secrets.token_urlsafe(48)


def render(example: str, secret_names: list[str]) -> str:
    """`.env.example` with a generated value for each of `secret_names`."""
    wanted = set(secret_names)
    lines = []
    for line in example.splitlines():
        name, sep, _ = line.partition("=")
        if sep and not line.lstrip().startswith("#") and name.strip() in wanted:
            line = f"{name.strip()}={new_secret()}"
            wanted.discard(name.strip())
        lines.append(line)
    if wanted:
        missing = ", ".join(sorted(wanted))
        raise SystemExit(f"write_env: .env.example does not define {missing}")
    return "\n".join(lines) + "\n"


def defined(env: str) -> set[str]:
    """The variables an existing `.env` sets to a value (commented-out lines do not count)."""
    return {
        match.group(1)
        for match in re.finditer(
            r"^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*\S", env, re.M
        )
    }


def missing_secrets(env: str, secret_names: list[str]) -> list[str]:
    present = defined(env)
    return [name for name in dict.fromkeys(secret_names) if name not in present]


def append_secrets(target: Path, names: list[str]) -> None:
    env = target.read_text(encoding="utf-8")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    lines = [f"# Added by copier update on {today}: a generated secret the update needs."]
    lines += [f"{name}={new_secret()}" for name in names]
    separator = "" if env.endswith("\n") or not env else "\n"
    with target.open("a", encoding="utf-8") as handle:
        handle.write(separator + "\n".join(lines) + "\n")


STACK_SECRETS_COMMENT = (
    "# Secrets of the Compose stack (read by compose.yaml, not by the service's settings)."
)


def stack_secrets(names: list[str]) -> str:
    if not names:
        return ""
    lines = [STACK_SECRETS_COMMENT, *(f"{name}={new_secret()}" for name in names)]
    return "\n" + "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    given = [name for name in argv if name]
    stack = [name.removeprefix("compose:") for name in given if name.startswith("compose:")]
    settings = [name for name in given if not name.startswith("compose:")]
    names = settings + stack
    target = Path(".env")
    if target.exists():
        missing = missing_secrets(target.read_text(encoding="utf-8"), names)
        if not missing:
            print(".env exists already and sets every secret: left unchanged")
            return 0
        append_secrets(target, missing)
        print(f"Added {', '.join(missing)} to .env (generated; the other lines are unchanged)")
        return 0
    example = Path(".env.example")
    if not example.is_file():
        print("write_env: .env.example is missing; nothing to write", file=sys.stderr)
        return 1
    content = render(example.read_text(encoding="utf-8"), settings) + stack_secrets(stack)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    if not comparison_render():
        generated = f" with {len(names)} generated secret(s)" if names else ""
        print(f"Wrote .env{generated} (git-ignored, readable only by you)")
    return 0


def comparison_render() -> bool:
    """Whether this is one of the copies `copier update` renders outside the project to compare
    the old and the new template (it runs the tasks there too): the `.env` written there is
    thrown away, so saying so would only contradict what happens to the project's own `.env`.
    copier sets COPIER_OPERATION for tasks; the project itself is a git repository (update
    needs one), the comparison copies are not."""
    if os.environ.get("COPIER_OPERATION") != "update":
        return False
    inside = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"], capture_output=True, text=True, check=False
    )
    return inside.stdout.strip() != "true"


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
