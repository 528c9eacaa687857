"""Lint and types of every variant's rendered files, without installing any variant.

ruff is the template's own (pinned in its dev group) and reads each variant's configuration
from that variant's pyproject.toml. mypy runs from one shared environment holding every
dependency of every variant (the union of their pyproject.toml files, installed once from uv's
cache and kept under .cache/ until a variant's dependencies change); each variant is checked
with its own `[tool.mypy]` (strict, its Python version, pydantic's plugin), its package found
through `files = ["src", ...]` rather than installed; mypy's cache is kept under .cache/ too.
The installed check of each variant is TestQuality.test_make_check in test_variants.py
(`make check` in the variant's own environment, from its lock).
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from harness import ROOT, copier_questions, find_python, tool, uv_env
from variants import VARIANTS, Variant

pytestmark = pytest.mark.fast

CACHE = ROOT / ".cache"


def ruff(*args: str, rendered: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    """The template's ruff over every rendered variant at once (one process)."""
    return subprocess.run(
        [tool("ruff"), *args, "--no-cache", *(str(path) for path in rendered.values())],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.xdist_group("rendered")
def test_ruff_format_leaves_every_variant_unchanged(rendered: dict[str, Path]) -> None:
    result = ruff("format", "--check", rendered=rendered)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "files already formatted" in result.stdout


@pytest.mark.xdist_group("rendered")
def test_ruff_check_passes_on_every_variant(rendered: dict[str, Path]) -> None:
    result = ruff("check", rendered=rendered)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def dependency_specs(root: Path) -> set[str]:
    """What a variant installs for `make check`: its dependencies, extras and dev group."""
    project = tomllib.loads((root / "pyproject.toml").read_text())
    specs = set(project["project"]["dependencies"])
    for extra in project["project"].get("optional-dependencies", {}).values():
        specs.update(extra)
    specs.update(project["dependency-groups"]["dev"])
    return specs


@pytest.fixture(scope="session")
def types_env(rendered: dict[str, Path]) -> Path:
    """The shared environment's interpreter directory (its `bin`), made once per set of
    dependency specs (under a lock: xdist workers may ask at once)."""
    specs = sorted(set().union(*(dependency_specs(root) for root in rendered.values())))
    key = hashlib.sha256("\n".join(specs).encode()).hexdigest()[:12]
    home = CACHE / "types-env"
    env = home / key
    home.mkdir(parents=True, exist_ok=True)
    with (home / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (env / "done").exists():
            for stale in home.iterdir():
                if stale.is_dir():
                    shutil.rmtree(stale)
            python = find_python(str(copier_questions()["python_version"]["default"]))
            uv = [tool("uv"), "--quiet"]
            for command in (
                [*uv, "venv", "--python", python, str(env)],
                [*uv, "pip", "install", "--python", str(env / "bin" / "python"), *specs],
            ):
                result = subprocess.run(
                    command, capture_output=True, text=True, env=uv_env(), timeout=900
                )
                assert result.returncode == 0, result.stdout + result.stderr
            (env / "done").touch()
    return env / "bin"


@pytest.fixture(scope="session")
def mypy_cache(worker_id: str) -> Path:
    """mypy's cache, kept between runs, one per xdist worker (the variants share one package
    name, so two processes checking two variants at once would overwrite each other's)."""
    return CACHE / "types-mypy" / worker_id


# Not in an xdist group: the variants spread over the workers.
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda variant: variant.id)
def test_mypy_strict_passes(
    rendered: dict[str, Path], types_env: Path, mypy_cache: Path, variant: Variant
) -> None:
    root = rendered[variant.id]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True  # the variant's own configuration is the one checked
    result = subprocess.run(
        [str(types_env / "mypy"), "--cache-dir", str(mypy_cache)],
        cwd=root,
        capture_output=True,
        text=True,
        env=uv_env(),
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "Success: no issues found" in result.stdout
