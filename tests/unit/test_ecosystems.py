"""The registry of package ecosystems: the built-in three in install order, looked up by
name, and one more added beside them (as a plug-in or a test would) and taken away again."""

from __future__ import annotations

import pytest

from pyrlab import ecosystems
from pyrlab.ecosystems import debian


def test_the_built_in_ecosystems_in_install_order() -> None:
    registered = ecosystems.registered()
    assert [eco.name for eco in registered] == ["debian", "python", "r"]
    # Names users see and names that feed input hashes and locks stay as they were.
    assert [(eco.step, eco.list_key, eco.lock_key, eco.manifest_key) for eco in registered] == [
        ("apt", "debs", "debs", "debs"),
        ("python", "requirements", "python", "python_dists"),
        ("r", "r_packages", "r", "r"),
    ]
    assert ecosystems.named("r") is registered[2]
    with pytest.raises(KeyError):
        ecosystems.named("conda")


def test_an_added_ecosystem_is_registered_in_order_and_undone() -> None:
    extra = debian.ECOSYSTEM._replace(name="files", title="Files", order=15, step="files",
                                      list_key="files", lock_key="files", manifest_key="files")
    undo = ecosystems.register(extra)
    try:
        assert [eco.name for eco in ecosystems.registered()] == ["debian", "files", "python", "r"]
    finally:
        undo()
    assert "files" not in [eco.name for eco in ecosystems.registered()]


def test_an_ecosystem_cannot_take_a_name_already_registered() -> None:
    clash = debian.ECOSYSTEM._replace(name="files", order=99)
    with pytest.raises(ValueError, match="step, list_key, lock_key, manifest_key"):
        ecosystems.register(clash)
    assert len(ecosystems.registered()) == 3
