"""Every line of the README's "What CellViewer guarantees" names tests that exist, so the
section cannot drift from the suite that backs it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_guarantee_names_existing_tests():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## What CellViewer guarantees")
    section = readme[start:readme.index("\n## ", start + 1)]
    named = re.findall(r"`(tests/[^`:]+\.py)::([A-Za-z0-9_]+)`", section)
    assert len(named) >= 20
    missing = [f"{path}::{name}" for path, name in named
               if f"def {name}(" not in (ROOT / path).read_text(encoding="utf-8")]
    assert missing == []
