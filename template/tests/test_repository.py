"""The repository itself: no conflict left behind by `git merge` or `copier update`.

`copier update` reports a same-line conflict only by writing conflict markers into the file
(its exit status is 0); this test, run by `pytest` locally and in CI, refuses to pass until
every one is resolved.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPED = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__", "data"}
OURS, THEIRS = "<" * 7, ">" * 7


def conflict_markers(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or SKIPPED.intersection(path.relative_to(root).parts):
            continue
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
