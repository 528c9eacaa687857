"""The template's own source: conditions are spelled once, by name, in copier.yml.

A condition that spans several values of a question (`auth in ['jwt', 'jwt_api_key']`,
`database != 'none'`, an option of the observability multiselect) is a computed value in
copier.yml (`has_users`, `has_db`, `has_metrics`, ...) and the template uses that name in file
names and files alike. Tests on one value (`auth == 'oidc'`) stay as they are.
"""

from __future__ import annotations

import re

import feature_map
import jinja2
import pytest
from harness import ROOT, choices, copier_questions, named_conditions
from variants import VARIANTS, Variant

TEMPLATE = ROOT / "template"
JINJA_TAG = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.DOTALL)
MULTIPLE_CHOICE = sorted(key for key, spec in copier_questions().items() if "choices" in spec)


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
    ):
        assert raw_multi_value_tests(raw), raw
    for named in ("{% if has_users %}", "{% if auth == 'oidc' %}", "{{ project_slug }}"):
        assert raw_multi_value_tests(named) == [], named


def test_every_named_condition_is_used() -> None:
    used = "\n".join(text for _, text in template_sources())
    unused = [name for name in named_conditions() if not re.search(rf"\b{name}\b", used)]
    assert unused == []


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda variant: variant.id)
def test_named_conditions_evaluate_on_every_variant(variant: Variant) -> None:
    """Each named condition renders to a yes/no answer for every declared variant."""
    context = {key: value for key, value in variant.resolved.items() if ":" not in key}
    for name, expression in named_conditions().items():
        rendered = jinja2.Template(expression).render(**context)
        assert rendered in {"True", "False"}, f"{variant}: {name} renders {rendered!r}"


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
