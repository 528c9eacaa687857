"""The declared list of template variants that the tests render, check, install and boot.

Rules, checked by test_variant_matrix.py:
- every value of every multiple-choice question appears in at least one variant;
- every pair of values of questions that interact (INTERACTING) appears in one variant;
  a multiselect question counts as one yes/no question per option ("observability:otel").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import jinja2
from harness import choices, copier_questions

Answer = str | list[str]


@dataclass(frozen=True)
class Variant:
    id: str
    answers: dict[str, Answer] = field(default_factory=dict)

    @cached_property
    def resolved(self) -> dict[str, Any]:
        """The answers with copier.yml's defaults for every multiple-choice question.

        A multiselect question also yields one "question:option" entry per option ("yes" or
        "no"), so pairs with single options can be declared as interacting.
        """
        values: dict[str, Any] = dict(self.answers)
        for key, spec in copier_questions().items():
            if "choices" not in spec or key in values:
                continue
            default = spec.get("default")
            if isinstance(default, str) and "{{" in default:
                default = jinja2.Template(default).render(**values)
            values[key] = default
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


# One row per variant after the default one: its answer to every multiple-choice question
# (a multiselect answer is comma-separated, "-" selects nothing). The free-text questions keep
# their defaults.
MATRIX = """
id                     database    auth         rate_limiter  observability           python_version  deployment          ci
all-on-pg              postgresql  jwt          redis         prometheus,otel,sentry  3.11            compose,kubernetes  github
jwt-bare               sqlite      jwt          none          -                       3.13            -                   gitlab
jwt-apikey-pg-otel     postgresql  jwt_api_key  memory        otel                    3.12            kubernetes          github
jwt-apikey-redis       sqlite      jwt_api_key  redis         prometheus,sentry       3.13            compose             none
jwt-apikey-pg-nolimit  postgresql  jwt_api_key  none          prometheus              3.13            -                   github
apikey-nodb            none        api_key      memory        -                       3.13            kubernetes          github
apikey-redis-otel      sqlite      api_key      redis         prometheus,otel         3.12            -                   none
apikey-pg-sentry       postgresql  api_key      none          sentry                  3.11            compose,kubernetes  none
oidc-nodb-redis        none        oidc         redis         otel                    3.12            compose,kubernetes  gitlab
oidc-sqlite            sqlite      oidc         none          prometheus,sentry       3.11            compose             github
oidc-pg-otel-sentry    postgresql  oidc         memory        otel,sentry             3.13            -                   none
open-nodb-all-obs      none        none         none          prometheus,otel,sentry  3.13            -                   none
open-sqlite            sqlite      none         memory        -                       3.11            kubernetes          gitlab
open-pg-redis          postgresql  none         redis         prometheus              3.12            compose,kubernetes  gitlab
"""


def _rows(table: str) -> list[Variant]:
    header, *lines = table.strip().splitlines()
    _, *questions = header.split()
    variants = []
    for line in lines:
        id, *cells = line.split()
        answers: dict[str, Answer] = {}
        for question, cell in zip(questions, cells, strict=True):
            multiselect = copier_questions()[question].get("multiselect", False)
            answers[question] = [] if cell == "-" else cell.split(",") if multiselect else cell
        variants.append(Variant(id, answers))
    return variants


VARIANTS = [
    # The default answers: SQLite, JWT, in-memory limiter, Prometheus, Python 3.12, Compose and
    # Kubernetes, GitHub Actions.
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
