"""Checks that need only the rendered files of every variant, not an installed project.

`python3 dev.py render-all DIR` writes the same tree for readers and other tools; here it is
rendered once per session (in process, copy-time tasks skipped).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

# With test_ci.py (and any other user of the `rendered` fixture) on one xdist worker, so the
# variants are rendered once.
pytestmark = pytest.mark.xdist_group("rendered")

# A run of this many meaningful lines written twice in one generated project is copy-paste.
DUPLICATE_RUN = 8
# Not counted: blank lines, comments, imports, lone brackets, and parameter lists (`name: Type,`
# and the closing `) -> None:`), which repeat between any two functions with the same fixtures.
SKIPPED_LINE = re.compile(
    r"^(#.*|from .* import .*|import .*|[\])}:,]+|\"\"\"|pass|\.\.\.|\*?\w+: [\w.\[\], |]+,"
    r"|\) -> .*:)?$"
)


def meaningful_lines(path: Path) -> list[tuple[int, str]]:
    lines = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        folded = " ".join(line.split())
        if not SKIPPED_LINE.match(folded):
            lines.append((number, folded))
    return lines


def repeated_runs(root: Path) -> list[str]:
    """Places where the same DUPLICATE_RUN meaningful lines of Python stand twice (one row
    per run, at the run's first line)."""
    places: dict[tuple[str, ...], list[tuple[Path, int, int]]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        lines = meaningful_lines(path)
        for start in range(len(lines) - DUPLICATE_RUN + 1):
            window = tuple(text for _, text in lines[start : start + DUPLICATE_RUN])
            places[window].append((path, start, lines[start][0]))
    repeated = {
        (path, start) for found in places.values() if len(found) > 1 for path, start, _ in found
    }
    return sorted(
        " ~ ".join(f"{path.relative_to(root)}:{line}" for path, _, line in found)
        for found in places.values()
        if len(found) > 1 and not all((path, start - 1) in repeated for path, start, _ in found)
    )


def test_repeated_runs_are_found(tmp_path: Path) -> None:
    body = "\n".join(f"    value_{n} = compute({n}, 'x')" for n in range(DUPLICATE_RUN))
    (tmp_path / "a.py").write_text(f"def first():\n{body}\n")
    (tmp_path / "b.py").write_text(f"def second():\n{body}\n")
    (tmp_path / "c.py").write_text(f"def third():\n{body.replace('x', 'y')}\n")
    assert repeated_runs(tmp_path) == ["a.py:2 ~ b.py:2"]


def test_every_variant_renders(rendered: dict[str, Path]) -> None:
    from variants import VARIANTS

    assert sorted(rendered) == sorted(variant.id for variant in VARIANTS)


def test_no_copy_pasted_code_in_any_variant(rendered: dict[str, Path]) -> None:
    found = {variant_id: repeated_runs(path) for variant_id, path in rendered.items()}
    assert {variant_id: runs for variant_id, runs in found.items() if runs} == {}


def test_every_alert_has_a_runbook_and_every_runbook_an_alert(
    rendered: dict[str, Path],
) -> None:
    import yaml

    checked = 0
    for variant_id, root in rendered.items():
        alerts_file = root / "monitoring" / "alerts.yml"
        pages = {
            path.relative_to(root).as_posix()
            for path in (root / "docs" / "runbooks" / "alerts").glob("*.md")
        }
        if not alerts_file.exists():
            assert pages == set(), f"{variant_id}: runbooks of alerts it does not ship"
            continue
        rules = [
            rule
            for group in yaml.safe_load(alerts_file.read_text())["groups"]
            for rule in group["rules"]
        ]
        urls = {rule["alert"]: rule["annotations"].get("runbook_url") for rule in rules}
        assert None not in urls.values(), f"{variant_id}: alerts without a runbook_url: {urls}"
        assert set(urls.values()) == pages, variant_id
        for alert, url in urls.items():
            # Each page names, in its title, every alert that points at it.
            assert alert in (root / url).read_text().splitlines()[0], f"{variant_id}: {url}"
        checked += 1
    assert checked >= 5


def test_runbook_index_links_every_runbook(rendered: dict[str, Path]) -> None:
    for variant_id, root in rendered.items():
        folder = root / "docs" / "runbooks"
        index = (folder / "README.md").read_text()
        linked = set(re.findall(r"\]\(([^)]+\.md)\)", index))
        pages = {path.relative_to(folder).as_posix() for path in folder.rglob("*.md")}
        assert linked == pages - {"README.md"}, variant_id
        for page in pages:
            for target in re.findall(r"\]\(([^)#]+\.md)\)", (folder / page).read_text()):
                assert (folder / page).parent.joinpath(target).resolve().exists(), (
                    f"{variant_id}: {page} links to {target}"
                )


# A Markdown link `[text](target)`; the target's path part and its `#fragment`.
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub and GitLab give a page's headings: lower case, punctuation other
    than `-` and `_` dropped, spaces as `-` (fenced code skipped: its `#` lines are comments)."""
    anchors = set()
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6} (.+)", line)):
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def broken_links(root: Path) -> list[str]:
    """Relative links of every Markdown file under `root` whose file, or heading, is not
    there."""
    broken = []
    for page in sorted(root.rglob("*.md")):
        if ".venv" in page.parts:
            continue
        for target in MARKDOWN_LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, fragment = target.partition("#")
            linked = page.parent.joinpath(path).resolve() if path else page
            where = f"{page.relative_to(root)} -> {target}"
            if not linked.exists():
                broken.append(f"{where}: no such file")
            elif fragment and fragment not in heading_anchors(linked.read_text(encoding="utf-8")):
                broken.append(f"{where}: no such heading")
    return broken


def test_broken_links_are_found(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(
        "# Service\n\n[ok](docs/page.md#what-production-refuses) [web](https://example.com)\n"
        "[missing](docs/gone.md) [heading](docs/page.md#nowhere)\n"
    )
    (tmp_path / "docs" / "page.md").write_text(
        "# Page\n\n## What production refuses\n\n```sh\n# not a heading\n```\n[up](../README.md)\n"
    )
    assert broken_links(tmp_path) == [
        "README.md -> docs/gone.md: no such file",
        "README.md -> docs/page.md#nowhere: no such heading",
    ]


def test_every_relative_link_of_every_page_resolves(rendered: dict[str, Path]) -> None:
    broken = {variant_id: broken_links(root) for variant_id, root in rendered.items()}
    assert {variant_id: links for variant_id, links in broken.items() if links} == {}
    for variant_id, root in rendered.items():
        # The README's table lists every page of docs/ (the runbooks have their own index).
        listed = re.findall(r"\]\(docs/([^)/#]+)\)", (root / "README.md").read_text())
        pages = [path.name for path in (root / "docs").glob("*.md")]
        assert sorted(listed) == sorted(pages), variant_id
