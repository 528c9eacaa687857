"""The declared list of template variants that the tests render, check, install and boot.

Rules, checked by test_variant_matrix.py:
- every value of every multiple-choice or yes/no question appears in at least one variant;
- every pair of values of questions that interact (INTERACTING) appears in one variant;
  a multiselect question counts as one yes/no question per option ("observability:otel").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import jinja2
from harness import choices, copier_questions, named_conditions

Answer = str | list[str] | bool


def is_choice(spec: dict[str, Any]) -> bool:
    return "choices" in spec


def is_yes_no(spec: dict[str, Any]) -> bool:
    """A yes/no question the user is asked (not one of copier.yml's computed conditions)."""
    return spec.get("type") == "bool" and spec.get("when") is not False


@dataclass(frozen=True)
class Variant:
    id: str
    answers: dict[str, Answer] = field(default_factory=dict)

    @cached_property
    def resolved(self) -> dict[str, Any]:
        """The answers with copier.yml's defaults for every multiple-choice and yes/no
        question; a yes/no answer reads "yes" or "no".

        A multiselect question also yields one "question:option" entry per option ("yes" or
        "no"), so pairs with single options can be declared as interacting.
        """
        values: dict[str, Any] = dict(self.answers)
        for key, spec in copier_questions().items():
            if not (is_choice(spec) or is_yes_no(spec)) or key in values:
                continue
            default = spec.get("default")
            if isinstance(default, str) and "{{" in default:
                default = jinja2.Template(default).render(**values)
            values[key] = default
        for key, spec in copier_questions().items():
            if is_yes_no(spec):
                values[key] = "yes" if values[key] in (True, "True", "true", "yes") else "no"
        for key, spec in copier_questions().items():
            if spec.get("multiselect"):
                for option in choices(key):
                    values[f"{key}:{option}"] = "yes" if option in values[key] else "no"
        return values

    def has(self, question: str, *values: str) -> bool:
        """Whether this variant answers `question` with one of `values` (or, for a
        multiselect question, selects one of them)."""
        answer = self.resolved[question]
        if isinstance(answer, list):
            return any(value in answer for value in values)
        return answer in values

    def named(self, name: str) -> bool:
        """copier.yml's named condition `name` (`has_users`, `has_db`, ...) for this variant,
        evaluated from its expression there, as copier evaluates it when rendering."""
        return self.conditions[name]

    @cached_property
    def answers_as_copier_has_them(self) -> dict[str, Any]:
        """Every multiple-choice and yes/no answer as copier's templates see it (a yes/no
        answer is a bool, a multiselect answer a list)."""
        return {
            key: value == "yes" if is_yes_no(copier_questions()[key]) else value
            for key, value in self.resolved.items()
            if ":" not in key
        }

    @cached_property
    def conditions(self) -> dict[str, bool]:
        """Every named condition of copier.yml, evaluated on this variant's answers in
        copier.yml's order (a name may use the names above it)."""
        values: dict[str, bool] = {}
        for name, expression in named_conditions().items():
            context = {**self.answers_as_copier_has_them, **values}
            rendered = jinja2.Template(expression).render(**context)
            assert rendered in {"True", "False"}, f"{self.id}: {name} renders {rendered!r}"
            values[name] = rendered == "True"
        return values


# One row per variant after the default one: its answer to every multiple-choice question
# (a multiselect answer is comma-separated, "-" selects nothing) and yes/no question (yes or
# no; a variant without a database says no to backups). The free-text questions keep their
# defaults.
MATRIX = """
id                     database    auth         rate_limiter  observability           python_version  deployment          backups  ci
all-on-pg              postgresql  jwt          redis         prometheus,otel,sentry  3.11            compose,kubernetes  yes      github
jwt-bare               sqlite      jwt          none          -                       3.13            -                   no       gitlab
jwt-apikey-pg-otel     postgresql  jwt_api_key  memory        otel                    3.12            kubernetes          yes      github
jwt-apikey-redis       sqlite      jwt_api_key  redis         prometheus,sentry       3.13            compose             yes      none
jwt-apikey-pg-nolimit  postgresql  jwt_api_key  none          prometheus              3.13            -                   yes      github
apikey-nodb            none        api_key      memory        -                       3.13            kubernetes          no       github
apikey-redis-otel      sqlite      api_key      redis         prometheus,otel         3.12            -                   yes      none
apikey-pg-sentry       postgresql  api_key      none          sentry                  3.11            compose,kubernetes  yes      none
oidc-nodb-redis        none        oidc         redis         otel                    3.12            compose,kubernetes  no       gitlab
oidc-sqlite            sqlite      oidc         none          prometheus,sentry       3.11            compose             yes      github
oidc-pg-otel-sentry    postgresql  oidc         memory        otel,sentry             3.13            -                   yes      none
open-nodb-all-obs      none        none         none          prometheus,otel,sentry  3.13            -                   no       none
open-sqlite            sqlite      none         memory        -                       3.11            kubernetes          yes      gitlab
open-pg-redis          postgresql  none         redis         prometheus              3.12            compose,kubernetes  no       gitlab
"""


def _rows(table: str) -> list[Variant]:
    header, *lines = table.strip().splitlines()
    _, *questions = header.split()
    variants = []
    for line in lines:
        id, *cells = line.split()
        answers: dict[str, Answer] = {}
        for question, cell in zip(questions, cells, strict=True):
            spec = copier_questions()[question]
            if is_yes_no(spec):
                assert cell in {"yes", "no"}, f"{id}: {question} is yes or no, not {cell}"
                answers[question] = cell == "yes"
                continue
            multiselect = spec.get("multiselect", False)
            answers[question] = [] if cell == "-" else cell.split(",") if multiselect else cell
        variants.append(Variant(id, answers))
    return variants


VARIANTS = [
    # The default answers: SQLite, JWT, in-memory limiter, Prometheus, Python 3.12, Compose and
    # Kubernetes, backups, GitHub Actions.
    Variant("default"),
    *_rows(MATRIX),
]

# Questions whose values change each other's code; each pair of their values needs a variant
# (pairs a choice validator refuses, such as auth=jwt with database=none, are exempt).
# python_version only changes targets and the interpreter; it is covered value by value.
INTERACTING: list[tuple[str, str]] = [
    ("database", "auth"),  # users, refresh tokens and API keys live in the database
    ("auth", "rate_limiter"),  # the limiter keys callers by API key, then user, then IP
    ("observability:prometheus", "auth"),  # auth failures are counted
    ("observability:prometheus", "rate_limiter"),  # rejections are counted
    ("observability:prometheus", "database"),  # pool gauges
    ("observability:otel", "database"),  # SQLAlchemy instrumentation
    # Deployment files carry a service, a migration step, secrets and monitoring per answer.
    *(
        (f"deployment:{target}", question)
        for target in ("compose", "kubernetes")
        for question in (
            "database",
            "auth",
            "rate_limiter",
            "observability:prometheus",
            "observability:otel",
        )
    ),
    # Backups: one implementation per database; the Compose service, the CronJob and the
    # backup metric and alert exist only with them.
    ("backups", "database"),
    ("backups", "deployment:compose"),
    ("backups", "deployment:kubernetes"),
    ("backups", "observability:prometheus"),
    # A pipeline tests against the chosen services, runs promtool and checks the deployment files.
    *(
        ("ci", question)
        for question in (
            "database",
            "rate_limiter",
            "observability:prometheus",
            "deployment:compose",
            "deployment:kubernetes",
        )
    ),
]
