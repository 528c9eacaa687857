"""Copier task: `uv lock`, so that the image builds with `uv sync --locked` right away.

The Dockerfile installs exactly what `uv.lock` pins (the dependency layer is built from it), so
a project needs the file before its first `docker build`. On copy it is written here (copy only:
on update, the guide's `uv sync` brings the lock in line with the new `pyproject.toml`). Without
uv, or when the lock fails (no network), copier goes on and this prints the command to run later.

Usage: lock.py (in the generated project's directory)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

LATER = "run `uv lock` in the project before `docker build` (the image installs from uv.lock)"


def find_uv() -> str | None:
    """uv beside the interpreter running copier (uvx, pipx, a venv), else on PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file():
        return str(beside)
    return shutil.which("uv")


def main() -> int:
    uv = find_uv()
    if uv is None:
        print(f"lock: uv is not installed; {LATER}", file=sys.stderr)
        return 0
    print("lock: resolving the dependencies into uv.lock (uv lock)", flush=True)
    result = subprocess.run([uv, "lock"], check=False)
    if result.returncode != 0:
        print(f"lock: uv lock failed (exit {result.returncode}); {LATER}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
