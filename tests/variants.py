"""The declared list of template variants that the tests render, check, install and boot.

Rules, checked by test_variant_matrix.py:
- every value of every multiple-choice question appears in at least one variant;
- every pair of values of questions that interact (INTERACTING) appears in one variant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness import copier_questions


@dataclass(frozen=True)
class Variant:
    id: str
    answers: dict[str, str] = field(default_factory=dict)

    @property
    def resolved(self) -> dict[str, Any]:
        """The answers with copier.yml's defaults for every multiple-choice question."""
        values = {
            key: spec.get("default")
            for key, spec in copier_questions().items()
            if "choices" in spec
        }
        values.update(self.answers)
        return values


VARIANTS = [
    # The default answers: SQLite, Python 3.12.
    Variant("default"),
    Variant("postgresql-py311", {"database": "postgresql", "python_version": "3.11"}),
    Variant("nodb-py313", {"database": "none", "python_version": "3.13"}),
]

# Questions whose values change each other's code; each pair of their values needs a variant.
# (python_version only changes targets and the interpreter; it is covered value by value.)
INTERACTING: list[tuple[str, str]] = []
