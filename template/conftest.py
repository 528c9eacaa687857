"""Loaded by pytest before anything of the project: a conflict left in a file by `copier
update` or `git merge` stops the run here, in one line naming the files, rather than as an
ImportError (or a syntax error) of the first module that imports the file.

pytest reports an exception raised while a conftest loads as an import error with its
traceback; SystemExit ends the run with just its message.
"""

import sys

from tests.test_repository import ROOT, conflict_markers


def _stop_on_conflict_markers() -> None:
    lines: dict[str, list[str]] = {}
    for marker in conflict_markers(ROOT):
        path, number, _ = marker.split(":", 2)
        lines.setdefault(path, []).append(number)
    if lines:
        where = ", ".join(f"{path} (lines {', '.join(numbers)})" for path, numbers in lines.items())
        sys.exit(f"pytest: resolve the conflict markers in {where}, then run the tests again")


_stop_on_conflict_markers()
