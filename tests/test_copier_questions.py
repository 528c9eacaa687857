"""Every invalid answer is refused by a copier validator with a one-line message and nothing
is written; good answers pass through into the project.

Answers are validated by copier before anything is rendered. Most tests here call copier in
process (`harness.copy_in_process`): the refusal is copier's ValueError, whose message is the
line the CLI prints last. Two run the `copier` CLI with `--data` for what the CLI itself does:
its exit status, and the validator's message as the last line after copier's own traceback.
Answers typed at the prompt are covered by test_copier_prompts.py.
"""

from __future__ import annotations

import keyword
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from harness import copier_questions, copy_in_process, render

pytestmark = pytest.mark.fast

REFUSED = [
    ("project_slug", "My_Service", "e.g. my-service: a-z 0-9 -, 2-41"),
    ("project_slug", "9lives", "e.g. my-app: start with a letter"),
    ("project_slug", "-svc", "e.g. my-app: start with a letter"),
    ("project_slug", "a" * 42, "e.g. my-service: a-z 0-9 -, 2-41"),
    ("project_slug", "trailing-", "e.g. my-service: no -- or final -"),
    ("package_name", "class", "e.g. my_service: not a keyword"),
    ("package_name", "json", "e.g. my_service: shadows a module"),
    ("package_name", "fastapi", "e.g. my_service: shadows a module"),
    ("package_name", "my-service", "e.g. my_service: a-z 0-9 _ only"),
    ("package_name", "Service", "e.g. my_service: a-z 0-9 _ only"),
    ("author_email", "not-an-email", "e.g. team@example.com: not valid"),
    ("author_email", "a@b", "e.g. team@example.com: not valid"),
    ("author_name", " ", "e.g. Platform Team: it is empty"),
    ("author_name", 'A "B"', 'e.g. Platform Team: no " or \\'),
    ("project_name", "", "e.g. My Service: it is empty"),
    ("project_name", "x" * 61, "e.g. My Service: 60 chars at most"),
    ("project_name", 'Quote " me', 'e.g. My Service: one line, no " \\'),
    ("description", "x" * 201, "e.g. Orders API: 200 chars at most"),
    ("description", 'say "hi"', 'e.g. Orders API: no " \\ or newline'),
    ("python_version", "3.9", "3.9"),
    ("database", "mysql", "mysql"),
    ("auth", "saml", "saml"),
    ("rate_limiter", "nginx", "nginx"),
    ("observability", "[datadog]", "'datadog' is not in"),
]
# Copier's prompt shows a refusal as this prefix and the message on one toolbar line; what
# does not fit the terminal's width is cut, so every message fits 80 columns with its prefix.
PROMPT_PREFIX = "Validation error for question '{question}': "
COLUMNS = 80


def refusal(dest: Path, answers: dict[str, str | list[str] | bool]) -> str:
    """copier's message refusing `answers` (in process), after checking nothing was written."""
    with pytest.raises(ValueError) as refused:
        copy_in_process(dest, answers)
    assert not dest.exists() or not any(dest.iterdir()), "nothing may be written"
    return str(refused.value)


def as_data(question: str, answer: str) -> str | list[str]:
    """The answer as copier's `data`: a multiselect answer is a list (`[datadog]` on the CLI)."""
    if copier_questions()[question].get("multiselect"):
        return [item.strip() for item in answer.strip("[]").split(",")]
    return answer


@pytest.mark.parametrize(
    ("question", "answer", "message"), REFUSED, ids=[f"{q}={a[:12]}" for q, a, _ in REFUSED]
)
def test_invalid_answer_is_refused(
    tmp_path: Path, question: str, answer: str, message: str
) -> None:
    shown = refusal(tmp_path / "out", {question: as_data(question, answer)})
    assert message in shown
    assert "\n" not in shown
    if "choices" not in copier_questions()[question]:
        assert shown == PROMPT_PREFIX.format(question=question) + message
        assert len(shown) < COLUMNS, f"{len(shown)} columns: {shown}"


def test_refused_choice_fits_the_prompt(tmp_path: Path) -> None:
    """A choice that needs another answer (jwt without a database) says so in one short line:
    the last line of the CLI's output, after a failed exit status."""
    dest = tmp_path / "out"
    result = render(dest, {"database": "none", "auth": "jwt"}, check=False)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.endswith("Invalid choice for 'auth': e.g. api_key: jwt needs a database")
    assert len(last_line.split(": ", 1)[1]) < COLUMNS
    assert not dest.exists() or not any(dest.iterdir()), "nothing may be written"


def test_backups_without_a_database_are_refused(tmp_path: Path) -> None:
    """backups=true with database=none, given on the CLI as `--data backups=true`: one line
    that says why, and nothing written."""
    dest = tmp_path / "out"
    answers = {"database": "none", "auth": "api_key", "backups": "true"}
    result = render(dest, answers, check=False)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    shown = last_line.split(": ", 1)[1]
    message = "e.g. false: backups need a database"
    assert shown == PROMPT_PREFIX.format(question="backups") + message
    assert len(shown) < COLUMNS
    assert not dest.exists() or not any(dest.iterdir()), "nothing may be written"


def test_backups_default_follows_the_database(tmp_path: Path) -> None:
    """Asked (default yes) with a database; not asked, and off, without one."""
    with_db = tmp_path / "sqlite"
    copy_in_process(with_db, {"database": "sqlite"})
    assert (with_db / "src" / "my_service" / "backup" / "commands.py").is_file()
    assert yaml.safe_load((with_db / ".copier-answers.yml").read_text())["backups"] is True
    without = tmp_path / "none"
    copy_in_process(without, {"database": "none", "auth": "api_key"})
    assert not (without / "src" / "my_service" / "backup").exists()
    assert "backups" not in yaml.safe_load((without / ".copier-answers.yml").read_text())


def test_defaults_derive_slug_and_package(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    copy_in_process(dest, {"project_name": "Billing  API v2!"})
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


def test_env_task_adds_only_missing_secrets_and_changes_nothing_twice(tmp_path: Path) -> None:
    """What the task does to an existing `.env` on `copier update`."""
    dest = tmp_path / "out"
    copy_in_process(dest, {"database": "none"})
    mine = "APP_ENV=development\nMY_OWN=1\n# SOME_SECRET=commented-out-does-not-count\n"
    (dest / ".env").write_text(mine)
    hook = Path(__file__).resolve().parents[1] / "hooks" / "write_env.py"

    def run_task() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(hook), "SOME_SECRET", "MY_OWN", ""],
            cwd=dest,
            capture_output=True,
            text=True,
        )

    first = run_task()
    assert first.returncode == 0, first.stderr
    assert "Added SOME_SECRET to .env" in first.stdout
    added = (dest / ".env").read_text()
    assert added.startswith(mine), "existing lines are never changed"
    new_lines = added.removeprefix(mine).splitlines()
    assert new_lines[0].startswith("# Added by copier update on ")
    name, _, value = new_lines[1].partition("=")
    assert (name, len(value) >= 43) == ("SOME_SECRET", True)
    assert len(new_lines) == 2

    second = run_task()
    assert second.returncode == 0
    assert "left unchanged" in second.stdout
    assert (dest / ".env").read_text() == added
