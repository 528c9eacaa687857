"""The repository itself: no conflict left behind by `git merge` or `copier update`.

`copier update` reports a same-line conflict only by writing conflict markers into the file
(its exit status is 0). The project's root `conftest.py` stops `pytest` at its start, in one
line naming the files, until every one is resolved; these tests check the search (also run
alone, `pytest --noconftest tests/test_repository.py`).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPED = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__", "data"}
OURS, THEIRS = "<" * 7, ">" * 7


def conflict_markers(root: Path) -> list[str]:
    """Each conflict marker under `root`, as "path:line number: marker line"."""
    found = []
    # Skipped directories are not even entered: the root conftest runs this at every start.
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(name for name in subdirectories if name not in SKIPPED)
        for name in sorted(files):
            path = Path(directory, name)
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            for number, line in enumerate(text.splitlines(), start=1):
                if line in (OURS, THEIRS) or line.startswith((f"{OURS} ", f"{THEIRS} ")):
                    found.append(f"{path.relative_to(root)}:{number}: {line}")
    return found


def test_conflict_markers_are_found(tmp_path: Path) -> None:
    (tmp_path / "clean.py").write_text("x = 1\n")
    (tmp_path / "merged.py").write_text(
        f"{OURS} before updating\nx = 1\n=======\nx = 2\n{THEIRS} after updating\n"
    )
    assert conflict_markers(tmp_path) == [
        f"merged.py:1: {OURS} before updating",
        f"merged.py:5: {THEIRS} after updating",
    ]


def test_no_conflict_markers_in_the_project() -> None:
    assert conflict_markers(ROOT) == [], "resolve these conflicts, then commit"


def test_a_conflict_in_an_imported_module_stops_pytest_in_one_line(tmp_path: Path) -> None:
    """As `copier update` leaves it in main.py, which every test imports: pytest names the
    file at once instead of failing to import it."""
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=shutil.ignore_patterns(*SKIPPED))
    [main] = project.glob("src/*/main.py")
    text = main.read_text()
    first = text.splitlines(keepends=True)[0]
    main.write_text(
        text.replace(
            first,
            f"{OURS} before updating\n{first}=======\n{first}{THEIRS} after updating\n",
            1,
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,  # a loaded machine; the run itself takes seconds
    )
    output = (result.stdout + result.stderr).strip().splitlines()
    name = main.relative_to(project)
    assert output == [
        f"pytest: resolve the conflict markers in {name} (lines 1, 5), then run the tests again"
    ]
    assert result.returncode == 1
