"""The tiers of this suite: the fast tier installs and boots nothing, whatever a test asks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import pytest_collection_modifyitems

pytestmark = pytest.mark.fast


@dataclass
class Item:
    """What conftest's collection hook reads of a collected test."""

    nodeid: str
    fixturenames: list[str]
    markers: list[str] = field(default_factory=list)

    def get_closest_marker(self, name: str) -> Any:
        return name if name in self.markers else None

    def add_marker(self, marker: pytest.MarkDecorator) -> None:
        self.markers.append(marker.name)


def mark(*items: Item) -> None:
    pytest_collection_modifyitems(None, list(items))  # type: ignore[arg-type]


def test_a_test_of_an_installed_variant_is_marked_installs() -> None:
    installed = Item("t::installed[default]", ["project", "tmp_path"])
    read = Item("t::read", ["rendered"], ["fast"])
    mark(installed, read)
    assert installed.markers == ["installs"]
    assert read.markers == ["fast"]


@pytest.mark.parametrize("fixture", ["project", "database_env", "engine", "copie_session"])
def test_a_fast_test_that_needs_an_install_or_a_server_stops_the_run(fixture: str) -> None:
    with pytest.raises(pytest.UsageError, match=f"t::x is marked fast but uses {fixture}"):
        mark(Item("t::x", ["rendered", fixture], ["fast"]))
