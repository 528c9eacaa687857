"""Every invalid answer is refused by a copier validator with a one-line message and nothing
is written; good answers pass through into the project.

Answers given with `--data` are validated by copier before anything is rendered. Copier's CLI
prints its own traceback for such a refusal; the validator's one-line message is always the
last line. Answers typed at the prompt are covered by test_copier_prompts.py.
"""

from __future__ import annotations

import keyword
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from harness import copier_questions, render

REFUSED = [
    ("project_slug", "My_Service", "is not a valid slug"),
    ("project_slug", "9lives", "is not a valid slug"),
    ("project_slug", "a" * 42, "is not a valid slug"),
    ("project_slug", "trailing-", "no trailing or doubled hyphens"),
    ("package_name", "class", "is a Python keyword"),
    ("package_name", "json", "would shadow the standard-library or dependency module"),
    ("package_name", "fastapi", "would shadow the standard-library or dependency module"),
    ("package_name", "my-service", "is not a valid package name"),
    ("package_name", "Service", "is not a valid package name"),
    ("author_email", "not-an-email", "is not a valid e-mail address"),
    ("author_email", "a@b", "is not a valid e-mail address"),
    ("project_name", "", "must not be empty"),
    ("project_name", 'Quote " me', "without double quotes or backslashes"),
    ("description", "x" * 201, "at most 200 characters"),
    ("python_version", "3.9", "3.9"),
    ("database", "mysql", "mysql"),
    ("auth", "saml", "saml"),
    ("rate_limiter", "nginx", "nginx"),
    ("observability", "[datadog]", "'datadog' is not in"),
]


@pytest.mark.parametrize(
    ("question", "answer", "message"), REFUSED, ids=[f"{q}={a[:12]}" for q, a, _ in REFUSED]
)
def test_invalid_answer_is_refused(
    tmp_path: Path, question: str, answer: str, message: str
) -> None:
    dest = tmp_path / "out"
    result = render(dest, {question: answer}, check=False)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert message in last_line
    assert last_line.count("\n") == 0
    assert not dest.exists() or not any(dest.iterdir()), "nothing may be written"


def test_validator_messages_are_one_line_and_say_what_to_do(tmp_path: Path) -> None:
    result = render(tmp_path / "out", {"package_name": "class"}, check=False)
    line = result.stderr.strip().splitlines()[-1]
    assert line.endswith(
        '"class" is a Python keyword: choose another package name (for example "class_service").'
    )


def test_defaults_derive_slug_and_package(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    render(dest, {"project_name": "Billing  API v2!"})
    answers = yaml.safe_load((dest / ".copier-answers.yml").read_text())
    assert answers["project_slug"] == "billing-api-v2"
    assert answers["package_name"] == "billing_api_v2"
    assert "reserved_package_names" not in answers
    assert "python_keywords" not in answers
    assert answers["_src_path"]


def test_reserved_names_cover_this_pythons_stdlib() -> None:
    reserved = set(copier_questions()["reserved_package_names"]["default"])
    stdlib = {name for name in sys.stdlib_module_names if not name.startswith("_")}
    assert stdlib - reserved == set()
    keywords = set(copier_questions()["python_keywords"]["default"])
    assert {word for word in keyword.kwlist if word.islower()} == keywords


def test_copy_task_is_idempotent_and_keeps_an_existing_env(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    render(dest, {"database": "none"})
    (dest / ".env").write_text("APP_ENV=development\nMY_OWN=1\n")
    hook = Path(__file__).resolve().parents[1] / "hooks" / "write_env.py"
    result = subprocess.run(
        [sys.executable, str(hook), "SOME_SECRET"], cwd=dest, capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "left unchanged" in result.stdout
    assert (dest / ".env").read_text() == "APP_ENV=development\nMY_OWN=1\n"
