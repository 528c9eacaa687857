"""The feature map: which files and named conditions each answer of copier.yml switches on.

`python3 dev.py feature-map` writes it to docs/feature-map.md; tests/test_template_source.py
fails when the committed page differs from what the template says today.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from harness import ROOT, choices, copier_questions, named_conditions

TEMPLATE = ROOT / "template"
SUITE = ROOT / "tests"
PAGE = ROOT / "docs" / "feature-map.md"
JINJA_TAG = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.DOTALL)
CONDITIONAL_NAME = re.compile(r"\{%\s*if\s+(.*?)\s*%\}")


def multiple_choice_questions() -> list[str]:
    return [key for key, spec in copier_questions().items() if "choices" in spec]


def mentions(expression: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}\b", expression) is not None


def decided_by(question: str) -> list[str]:
    """The named conditions whose value depends on `question`, directly or through another."""
    conditions = named_conditions()
    found: list[str] = []
    changed = True
    while changed:
        changed = False
        for name, expression in conditions.items():
            if name in found:
                continue
            if mentions(expression, question) or any(mentions(expression, n) for n in found):
                found.append(name)
                changed = True
    return sorted(found)


def template_files() -> list[Path]:
    return sorted(path for path in TEMPLATE.rglob("*") if path.is_file())


QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def jinja_text(text: str) -> str:
    """The Jinja tags of `text`, without their string literals (values, not names)."""
    return "\n".join(QUOTED.sub("''", tag.group(0)) for tag in JINJA_TAG.finditer(text))


def shown(path: Path) -> str:
    """The path the file has in a generated project that has it."""
    relative = str(path.relative_to(TEMPLATE))
    relative = re.sub(r"\{%.*?%\}", "", relative).replace("{{package_name}}", "<package>")
    return f"`{relative.removesuffix('.jinja')}`"


def files_named_by(name: str) -> list[Path]:
    """Files (or files under directories) that exist only when `name` holds."""
    found = []
    for path in template_files():
        relative = str(path.relative_to(TEMPLATE))
        if any(mentions(expr, name) for expr in CONDITIONAL_NAME.findall(relative)):
            found.append(path)
    return found


def files_testing(name: str) -> list[Path]:
    """Files whose text tests `name` in a Jinja tag."""
    return [
        path
        for path in template_files()
        if mentions(jinja_text(path.read_text(encoding="utf-8")), name)
    ]


def files_reading_question(question: str) -> list[Path]:
    """Template files that read a question's answer itself, in their name or their text,
    rather than a named condition: the files a new value of the question may have to edit."""
    found = []
    for path in template_files():
        relative = str(path.relative_to(TEMPLATE))
        text = jinja_text(path.read_text(encoding="utf-8")) + "\n" + jinja_text(relative)
        if mentions(text, question):
            found.append(path)
    return found


def shared_files_reading(question: str) -> list[Path]:
    """The files reading `question` that are not one value's own file."""
    own = re.compile(rf"{re.escape(question)}\s*==")
    return [
        path
        for path in files_reading_question(question)
        if not any(own.search(expr) for expr in CONDITIONAL_NAME.findall(str(path)))
    ]


def suite_files_spelling(values: Iterable[str]) -> list[Path]:
    """Files of the template's own suite that spell one of `values` as a string."""
    pattern = re.compile("|".join(rf"[\"']{re.escape(value)}[\"']" for value in values))
    return sorted(path for path in SUITE.glob("*.py") if pattern.search(path.read_text()))


def cell(paths: list[Path], limit: int = 5) -> str:
    if not paths:
        return "-"
    names = [shown(path) for path in paths[:limit]]
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(names) + more


def render() -> str:
    lines = [
        "# Feature map",
        "",
        "What each answer of `copier.yml` switches on in `template/`. Written by",
        "`python3 dev.py feature-map`; `tests/test_template_source.py` fails when this page",
        "differs from what the template says. Counts are of template files.",
        "",
        "## Questions",
        "",
        "| question | values | named conditions it decides | files that read the answer itself |",
        "| --- | --- | --- | --- |",
    ]
    for question in multiple_choice_questions():
        reading = files_reading_question(question)
        lines.append(
            f"| `{question}` | {', '.join(f'`{v}`' for v in choices(question))} | "
            f"{', '.join(f'`{n}`' for n in decided_by(question)) or '-'} | "
            f"{len(reading)}: {cell(reading)} |"
        )
    lines += [
        "",
        "## Named conditions",
        "",
        "| name | true when | files that exist only then | files that test it inside |",
        "| --- | --- | --- | --- |",
    ]
    for name, expression in named_conditions().items():
        inner = expression.strip().removeprefix("{{").removesuffix("}}").strip()
        named = files_named_by(name)
        testing = [path for path in files_testing(name) if path not in named]
        lines.append(
            f"| `{name}` | `{inner}` | {len(named)}: {cell(named)} | "
            f"{len(testing)}: {cell(testing)} |"
        )
    shared = shared_files_reading("auth")
    suite = suite_files_spelling(value for value in choices("auth") if value != "none")
    lines += [
        "",
        "## A new auth scheme",
        "",
        "A scheme brings its own files (named `{% if auth == '<scheme>' %}...{% endif %}`, or by",
        "a named condition it shares with others), its value in `copier.yml` (the choice, and",
        "the named conditions above that should include it), a variant in `tests/variants.py`,",
        "and its docs. Beyond those, these files shared by every scheme read `auth` itself",
        f"({len(shared)}):",
        "",
        *(f"- {shown(path)}" for path in shared),
        "",
        f"The template's own suite spells auth values by hand in {len(suite)} files:",
        ", ".join(f"`tests/{path.name}`" for path in suite) or "none",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    PAGE.parent.mkdir(exist_ok=True)
    PAGE.write_text(render())
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0
