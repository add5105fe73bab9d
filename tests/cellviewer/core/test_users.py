"""One notion of the current user: headless commands take --user, else CELLVIEWER_USER, else
refuse; names are cleaned; a store opened by a script records the environment's user."""

from __future__ import annotations

import pytest

from cellviewer.core.project.users import NoUserError, clean_user, default_user, headless_user
from cellviewer.core.store import ProjectStore


def test_headless_commands_need_a_user(monkeypatch):
    assert headless_user("  alice  ") == "alice"
    assert headless_user(None) == "test-user"  # CELLVIEWER_USER (the test suite sets it)
    monkeypatch.delenv("CELLVIEWER_USER")
    with pytest.raises(NoUserError, match="--user NAME or set CELLVIEWER_USER"):
        headless_user(None)
    with pytest.raises(NoUserError):
        headless_user("   ")


def test_names_are_one_clean_line():
    assert clean_user(" dr \n  who ") == "dr who"
    assert clean_user("") is None and clean_user(None) is None


def test_a_scripts_store_records_the_environments_user(tmp_path, monkeypatch):
    with ProjectStore.create(tmp_path / "p.cvproj") as store:
        assert store.user == default_user() == "test-user"
    monkeypatch.delenv("CELLVIEWER_USER")
    assert default_user()  # the login name, or "unknown"
