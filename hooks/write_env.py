"""Copier task: write `.env` for local development, once.

`.env` starts as a copy of `.env.example`; each variable named on the command line gets a
freshly generated secret. An existing `.env` is left alone, so the task is idempotent, and
secrets never enter `.copier-answers.yml` (`.env` is git-ignored).

Usage: write_env.py [SECRET_VARIABLE ...] (empty arguments are ignored)
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path


def render(example: str, secret_names: list[str]) -> str:
    wanted = set(secret_names)
    lines = []
    for line in example.splitlines():
        name, sep, _ = line.partition("=")
        if sep and not line.lstrip().startswith("#") and name.strip() in wanted:
            line = f"{name.strip()}={secrets.token_urlsafe(48)}"
            wanted.discard(name.strip())
        lines.append(line)
    if wanted:
        missing = ", ".join(sorted(wanted))
        raise SystemExit(f"write_env: .env.example does not define {missing}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    target = Path(".env")
    if target.exists():
        print(".env exists already: left unchanged")
        return 0
    example = Path(".env.example")
    if not example.is_file():
        print("write_env: .env.example is missing; nothing to write", file=sys.stderr)
        return 1
    argv = [name for name in argv if name]
    content = render(example.read_text(encoding="utf-8"), argv)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    generated = f" with {len(argv)} generated secret(s)" if argv else ""
    print(f"Wrote .env{generated} (git-ignored, readable only by you)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
