"""The declared variant list covers every answer, and every pair of interacting answers."""

from __future__ import annotations

import itertools

import pytest
from harness import choices, copier_questions, copy_in_process
from variants import INTERACTING, VARIANTS, Answer, is_choice, is_yes_no

pytestmark = pytest.mark.fast

QUESTIONS = copier_questions()
CHOICE_QUESTIONS = sorted(
    key for key, spec in QUESTIONS.items() if is_choice(spec) or is_yes_no(spec)
)


def values_of(question: str) -> list[str]:
    """The values of a question, or "yes"/"no" for a yes/no question or one option of a
    multiselect question."""
    if ":" in question:
        key, option = question.split(":", 1)
        assert option in choices(key), question
        return ["yes", "no"]
    if is_yes_no(QUESTIONS[question]):
        return ["yes", "no"]
    return choices(question)


def test_variant_ids_are_unique() -> None:
    ids = [variant.id for variant in VARIANTS]
    assert len(ids) == len(set(ids))


def test_variants_answer_only_real_questions_with_real_values() -> None:
    for variant in VARIANTS:
        for key, value in variant.answers.items():
            assert key in QUESTIONS, f"{variant.id}: no question {key}"
            if "choices" in QUESTIONS[key]:
                given = value if isinstance(value, list) else [value]
                assert set(given) <= set(choices(key)), f"{variant.id}: {key}={value}"
            if is_yes_no(QUESTIONS[key]):
                assert isinstance(value, bool), f"{variant.id}: {key}={value}"


def test_variants_without_a_database_have_no_backups() -> None:
    for variant in VARIANTS:
        if variant.has("database", "none"):
            assert variant.has("backups", "no"), variant.id


def test_backups_are_off_in_a_variant_of_each_database() -> None:
    """The files that only backups bring are absent from one variant of each database."""
    for database in ("sqlite", "postgresql"):
        assert any(v.has("database", database) and v.has("backups", "no") for v in VARIANTS), (
            database
        )
    assert VARIANTS[0].has("backups", "yes")


@pytest.mark.parametrize("question", CHOICE_QUESTIONS)
def test_every_value_is_in_a_variant(question: str) -> None:
    covered: set[str] = set()
    for variant in VARIANTS:
        answer = variant.resolved[question]
        covered.update(answer if isinstance(answer, list) else [answer])
    assert set(values_of(question)) <= covered, f"{question}: {set(values_of(question)) - covered}"


def test_every_interacting_pair_is_in_a_variant() -> None:
    missing = []
    for first, second in INTERACTING:
        covered = {(variant.resolved[first], variant.resolved[second]) for variant in VARIANTS}
        pairs = set(itertools.product(values_of(first), values_of(second)))
        missing += [f"{first}={a} x {second}={b}" for a, b in sorted(pairs - covered)]
    refused = {
        "database=none x auth=jwt",
        "database=none x auth=jwt_api_key",
        "backups=yes x database=none",
    }
    assert sorted(set(missing) - refused) == []


def test_every_observability_combination_is_in_a_variant() -> None:
    options = choices("observability")
    wanted = {
        frozenset(combination)
        for size in range(len(options) + 1)
        for combination in itertools.combinations(options, size)
    }
    covered = {frozenset(variant.resolved["observability"]) for variant in VARIANTS}
    assert wanted - covered == set()


def test_refused_pairs_are_really_refused(tmp_path_factory: pytest.TempPathFactory) -> None:
    """copier refuses each pair the matrix leaves out (in process: test_copier_questions.py
    checks what the CLI prints)."""
    refused: list[tuple[dict[str, Answer], str]] = [
        *(
            ({"database": "none", "auth": auth}, "jwt needs a database")
            for auth in ("jwt", "jwt_api_key")
        ),
        ({"database": "none", "auth": "api_key", "backups": True}, "backups need a database"),
    ]
    for answers, message in refused:
        dest = tmp_path_factory.mktemp("refused") / "out"
        with pytest.raises(ValueError, match=message):
            copy_in_process(dest, answers)
        assert not dest.exists() or not any(dest.iterdir())
