"""The declared variant list covers every answer, and every pair of interacting answers."""

from __future__ import annotations

import itertools

import pytest
from harness import choices, copier_questions
from variants import INTERACTING, VARIANTS

CHOICE_QUESTIONS = sorted(key for key, spec in copier_questions().items() if "choices" in spec)


def test_variant_ids_are_unique() -> None:
    ids = [variant.id for variant in VARIANTS]
    assert len(ids) == len(set(ids))


def test_variants_answer_only_real_questions_with_real_values() -> None:
    questions = copier_questions()
    for variant in VARIANTS:
        for key, value in variant.answers.items():
            assert key in questions, f"{variant.id}: no question {key}"
            if "choices" in questions[key]:
                assert value in choices(key), f"{variant.id}: {key}={value} is not a choice"


@pytest.mark.parametrize("question", CHOICE_QUESTIONS)
def test_every_value_is_in_a_variant(question: str) -> None:
    covered = {variant.resolved[question] for variant in VARIANTS}
    assert set(choices(question)) <= covered, f"{question}: {set(choices(question)) - covered}"


def test_every_interacting_pair_is_in_a_variant() -> None:
    missing = []
    for first, second in INTERACTING:
        covered = {(variant.resolved[first], variant.resolved[second]) for variant in VARIANTS}
        pairs = set(itertools.product(choices(first), choices(second)))
        missing += [f"{first}={a} x {second}={b}" for a, b in sorted(pairs - covered)]
    assert missing == []
