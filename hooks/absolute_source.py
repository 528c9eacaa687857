"""Copier task: record a local template's absolute path in `.copier-answers.yml`.

`copier copy ../template my-service` stores `_src_path: ../template`, relative to the directory
the copy was made from; `copier update`, run inside the project, then cannot find the template
and says only "Updating is only supported in git-tracked templates". This task, run once after
a copy from the project directory, rewrites such a relative path to the absolute path of the
same template. URLs (`https://...`, `gh:...`, `git@...`) and absolute paths are left alone.

Usage: absolute_source.py SRC_PATH DST_PATH ANSWERS_FILE (as given to copier)
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

REMOTE = re.compile(r"^([a-z][a-z0-9+.-]*://|gh:|gl:|[\w.-]+@[\w.-]+:)", re.IGNORECASE)


def copy_origin(dst_path: str) -> list[Path]:
    """Where `copier copy` may have been started: the shell's directory, or the directory the
    destination argument was given relative to."""
    candidates = []
    if os.environ.get("PWD"):
        candidates.append(Path(os.environ["PWD"]))
    given = Path(dst_path)
    if not given.is_absolute() and ".." not in given.parts:
        # The task runs inside the destination: walk back up the path as given.
        origin = Path.cwd()
        for _ in given.parts:
            origin = origin.parent
        candidates.append(origin)
    return candidates


def absolute_template(src_path: str, dst_path: str) -> Path | None:
    for origin in copy_origin(dst_path):
        candidate = (origin / src_path).resolve()
        if (candidate / "copier.yml").is_file() or (candidate / "copier.yaml").is_file():
            return candidate
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: absolute_source.py SRC_PATH DST_PATH ANSWERS_FILE", file=sys.stderr)
        return 2
    src_path, dst_path, answers_name = argv
    if REMOTE.match(src_path) or Path(src_path).expanduser().is_absolute():
        return 0
    template = absolute_template(src_path, dst_path)
    if template is None:
        print(
            f"The template path {src_path!r} is relative and could not be resolved: before "
            f"`copier update`, set _src_path in {answers_name} to the template's absolute path "
            "or URL",
            file=sys.stderr,
        )
        return 1
    answers = Path(answers_name)
    text = answers.read_text(encoding="utf-8")
    line = re.compile(rf"^_src_path: *['\"]?{re.escape(src_path)}['\"]? *$", re.MULTILINE)
    if not line.search(text):
        print(f"absolute_source: no _src_path line in {answers_name}: left as it is")
        return 0
    recorded = f"_src_path: {json.dumps(str(template))}"  # a YAML double-quoted string
    answers.write_text(line.sub(lambda _: recorded, text, count=1), encoding="utf-8")
    print(f"Recorded the template's absolute path ({template}) in {answers_name} for updates")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
