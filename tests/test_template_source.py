"""The template's own source: conditions are spelled once, by name, in copier.yml.

A condition that spans several values of a question (`auth in ['jwt', 'jwt_api_key']`,
`database != 'none'`, an option of the observability multiselect) is a computed value in
copier.yml (`has_users`, `has_db`, `has_metrics`, ...) and the template uses that name in file
names and files alike. Tests on one value (`auth == 'oidc'`) stay as they are.
"""

from __future__ import annotations

import re

import feature_map
import pytest
from harness import ROOT, choices, copier_questions, named_conditions
from variants import VARIANTS, Variant

pytestmark = pytest.mark.fast

TEMPLATE = ROOT / "template"
JINJA_TAG = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.DOTALL)
MULTIPLE_CHOICE = sorted(key for key, spec in copier_questions().items() if "choices" in spec)


def questions_of(expression: str) -> set[str]:
    """The multiple-choice questions that a named condition's expression tests itself."""
    return {q for q in MULTIPLE_CHOICE if re.search(rf"\b{re.escape(q)}\b", expression)}


# Each named condition and the questions its own expression tests (has_users: auth).
NAMED_QUESTIONS = {
    name: questions_of(expression) for name, expression in named_conditions().items()
}


def raw_multi_value_tests(expression: str) -> list[str]:
    """The parts of one Jinja tag that test several values of a question without a name."""
    found = []
    for question in MULTIPLE_CHOICE:
        q = re.escape(question)
        patterns = [
            rf"\b{q}\s+(?:not\s+)?in\s*[\[(]",  # auth in ['jwt', 'jwt_api_key']
            rf"\b{q}\s*!=",  # database != 'none': every other value
            rf"\bin\s+{q}\b",  # 'otel' in observability
            rf"\b{q}\s*==.*\bor\b.*\b{q}\s*==",  # auth == 'a' or auth == 'b'
        ]
        # has_users or auth == 'oidc': a name widened by another value of its own question.
        names = "|".join(name for name, tested in NAMED_QUESTIONS.items() if question in tested)
        if names:
            patterns += [
                rf"\b(?:{names})\b\W+or\s+{q}\s*==",
                rf"\b{q}\s*==\s*\S+\s+or\W+(?:{names})\b",
            ]
        found += [match.group(0) for p in patterns for match in re.finditer(p, expression)]
    return found


def template_sources() -> list[tuple[str, str]]:
    """(where, text) for every template file's path and content."""
    sources = []
    for path in sorted(TEMPLATE.rglob("*")):
        relative = str(path.relative_to(TEMPLATE))
        sources.append((f"{relative} (its name)", relative))
        if path.is_file():
            sources.append((relative, path.read_text(encoding="utf-8")))
    return sources


def test_no_raw_multi_value_condition_outside_copier_yml() -> None:
    offences = []
    for where, text in template_sources():
        for tag in JINJA_TAG.finditer(text):
            line = text.count("\n", 0, tag.start()) + 1
            offences += [f"{where}:{line}: {raw}" for raw in raw_multi_value_tests(tag.group(0))]
    assert offences == [], (
        "name these conditions in copier.yml (see has_db, has_users, ...) and use the name:\n"
        + "\n".join(offences)
    )


def test_the_check_catches_each_raw_form() -> None:
    for raw in (
        "{% if auth in ['jwt', 'jwt_api_key'] %}",
        '{% if database != "none" %}',
        "{{ 'x' if 'otel' in observability else '' }}",
        "{%- elif auth == 'jwt' or auth == 'api_key' %}",
        '{% if has_users or auth == "oidc" -%}',
        "{%- if auth == 'oidc' or has_users %}",
        "{{ 'x' if (has_db or database == 'none') else '' }}",
    ):
        assert raw_multi_value_tests(raw), raw
    for named in (
        "{% if has_users %}",
        "{% if auth == 'oidc' %}",
        "{{ project_slug }}",
        # Another question, or a narrower condition: not a widened name.
        '{%- if has_db or rate_limiter == "redis" %}',
        '{%- if has_db and auth == "oidc" %}',
        "{{ 'a' if has_users else ('b' if auth == 'oidc' else '') }}",
    ):
        assert raw_multi_value_tests(named) == [], named


def test_every_named_condition_is_used() -> None:
    used = "\n".join(text for _, text in template_sources())
    unused = [name for name in named_conditions() if not re.search(rf"\b{name}\b", used)]
    assert unused == []


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda variant: variant.id)
def test_named_conditions_evaluate_on_every_variant(variant: Variant) -> None:
    """Each named condition renders to a yes/no answer for every declared variant
    (`Variant.conditions` asserts it), and yes/no answers count as copier counts them."""
    assert set(variant.conditions) == set(named_conditions())
    assert variant.named("has_backups") == (
        variant.resolved["backups"] == "yes" and variant.resolved["database"] != "none"
    )


def test_multiselect_options_are_named() -> None:
    """Every observability option has its has_* name, so no template tests the list itself."""
    expressions = " ".join(named_conditions().values())
    for option in choices("observability"):
        assert f"'{option}' in observability" in expressions, option


# A file with more branches than this is a hub every new choice has to edit: split it into a
# module (or page) per choice with a conditional name, or give the choices one interface.
MAX_IF_TAGS = 12
IF_TAG = re.compile(r"\{%-?\s*if\b")


def if_tags(text: str) -> int:
    return len(IF_TAG.findall(text))


def test_no_template_file_branches_more_than_the_cap() -> None:
    counts = {where: if_tags(text) for where, text in template_sources()}
    over = {where: count for where, count in counts.items() if count > MAX_IF_TAGS}
    assert over == {}, f"more than {MAX_IF_TAGS} `{{% if` tags: {over}"


def test_the_cap_counts_every_if_tag_and_nothing_else() -> None:
    text = "{% if a %}x{% elif b %}y{%- if c -%}z{% endif %}{% endif %}{{ 'w' if d }}{%if e%}"
    assert if_tags(text) == 3


def test_the_feature_map_says_what_the_template_does() -> None:
    committed = feature_map.PAGE.read_text() if feature_map.PAGE.exists() else ""
    assert committed == feature_map.render(), (
        "docs/feature-map.md is out of date: run `python3 dev.py feature-map` and commit it"
    )


MULTISELECT = sorted(key for key, spec in copier_questions().items() if spec.get("multiselect"))
# The template's own suite asks a variant or project for a named condition (`v.named("has_users")`)
# where it would test several values of a question, or an option of a multiselect question.
SUITE_PATTERNS = [
    *(rf'\.has\(\s*"{q}"\s*,\s*"[^"]*"\s*,' for q in MULTIPLE_CHOICE),  # .has("auth", "a", "b")
    *(rf'\[\s*"{q}"\s*\]\s*(?:!=\s*"none"|(?:not\s+)?in\b)' for q in MULTIPLE_CHOICE),
    *(rf'\.has\(\s*"{q}"' for q in MULTISELECT),  # .has("observability", "otel")
    *(rf'\bin\s+[\w.]+\[\s*"{q}"\s*\]' for q in MULTISELECT),  # "otel" in project["observability"]
    r'\.has\(\s*"backups"',  # has_backups: the answer and a database to back up
]
# test_update.py reads the answers of earlier releases, whose copier.yml named fewer conditions;
# test_variant_matrix.py checks the answers themselves; this module spells the forms it looks for.
SUITE_EXEMPT = {"test_update.py", "test_variant_matrix.py", "test_template_source.py"}


def raw_suite_conditions(code: str) -> list[str]:
    return [match.group(0) for p in SUITE_PATTERNS for match in re.finditer(p, code)]


def test_the_suite_asks_for_named_conditions() -> None:
    offences = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        if path.name in SUITE_EXEMPT:
            continue
        code = path.read_text(encoding="utf-8")
        for raw in raw_suite_conditions(code):
            offences.append(f"tests/{path.name}: {raw}")
    assert offences == [], "use Variant.named / Project.named:\n" + "\n".join(offences)


def test_the_suite_check_catches_each_raw_form() -> None:
    for raw in (
        'lambda v: v.has("auth", "jwt", "jwt_api_key")',
        'if project["database"] != "none":',
        'project["auth"] in ("jwt", "jwt_api_key")',
        'variant.has("observability", "prometheus")',
        'if "otel" in project["observability"]:',
        'project.variant.has("backups", "yes")',
    ):
        assert raw_suite_conditions(raw), raw
    for named in (
        'lambda v: v.named("has_users")',
        'v.has("auth", "oidc")',
        'if project["database"] == "postgresql":',
        'if project["rate_limiter"] != "redis":',
        'if name in services["migrate"]["depends_on"]:',
    ):
        assert raw_suite_conditions(named) == [], named
