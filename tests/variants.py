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


def _variant(
    id: str,
    database: str,
    auth: str,
    rate_limiter: str,
    observability: list[str],
    python_version: str,
    deployment: list[str],
) -> Variant:
    answers: dict[str, Answer] = {
        "database": database,
        "auth": auth,
        "rate_limiter": rate_limiter,
        "observability": observability,
        "python_version": python_version,
        "deployment": deployment,
    }
    return Variant(id, answers)


PROM, OTEL, SENTRY = "prometheus", "otel", "sentry"
COMPOSE, K8S = "compose", "kubernetes"

VARIANTS = [
    # The default answers: SQLite, JWT, in-memory limiter, Prometheus, Python 3.12, Compose and
    # Kubernetes.
    Variant("default"),
    _variant(
        "all-on-pg", "postgresql", "jwt", "redis", [PROM, OTEL, SENTRY], "3.11", [COMPOSE, K8S]
    ),
    _variant("jwt-bare", "sqlite", "jwt", "none", [], "3.13", []),
    _variant("jwt-apikey-pg-otel", "postgresql", "jwt_api_key", "memory", [OTEL], "3.12", [K8S]),
    _variant(
        "jwt-apikey-redis", "sqlite", "jwt_api_key", "redis", [PROM, SENTRY], "3.13", [COMPOSE]
    ),
    _variant("jwt-apikey-pg-nolimit", "postgresql", "jwt_api_key", "none", [PROM], "3.13", []),
    _variant("apikey-nodb", "none", "api_key", "memory", [], "3.13", [K8S]),
    _variant("apikey-redis-otel", "sqlite", "api_key", "redis", [PROM, OTEL], "3.12", []),
    _variant("apikey-pg-sentry", "postgresql", "api_key", "none", [SENTRY], "3.11", [COMPOSE, K8S]),
    _variant("oidc-nodb-redis", "none", "oidc", "redis", [OTEL], "3.12", [COMPOSE, K8S]),
    _variant("oidc-sqlite", "sqlite", "oidc", "none", [PROM, SENTRY], "3.11", [COMPOSE]),
    _variant("oidc-pg-otel-sentry", "postgresql", "oidc", "memory", [OTEL, SENTRY], "3.13", []),
    _variant("open-nodb-all-obs", "none", "none", "none", [PROM, OTEL, SENTRY], "3.13", []),
    _variant("open-sqlite", "sqlite", "none", "memory", [], "3.11", [K8S]),
    _variant("open-pg-redis", "postgresql", "none", "redis", [PROM], "3.12", [COMPOSE, K8S]),
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
]
