"""One way to leave the UI thread: ``QRunnable``, ``QThread``, ``threading.Thread`` and
``QProcess`` are used in ``cellviewer/ui`` only by the task runner (tasks.py) and the trainer
subprocess (trainer_process.py). Comments and docstrings may name them; code may not."""

from __future__ import annotations

import ast
from pathlib import Path

UI = Path(__file__).resolve().parents[3] / "cellviewer" / "ui"
ALLOWED = {"tasks.py", "trainer_process.py"}
NAMES = {"QRunnable", "QThread", "QProcess", "QThreadPool"}


def uses(path: Path) -> list[str]:
    """Where a file's code names one of the mechanisms (``file:line name``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        name = None
        if isinstance(node, ast.Name) and node.id in NAMES:
            name = node.id
        elif isinstance(node, ast.Attribute) and node.attr in NAMES:
            name = node.attr
        elif isinstance(node, ast.Attribute) and node.attr == "Thread" and isinstance(
                node.value, ast.Name) and node.value.id == "threading":
            name = "threading.Thread"
        elif isinstance(node, ast.ImportFrom):
            hits = [a.name for a in node.names if a.name in NAMES
                    or (node.module == "threading" and a.name == "Thread")]
            name = ", ".join(hits) or None
        if name:
            found.append(f"{path.name}:{node.lineno} {name}")
    return found


def test_only_tasks_and_trainer_process_leave_the_ui_thread():
    offenders = []
    for path in sorted(UI.rglob("*.py")):
        if path.name not in ALLOWED:
            offenders += uses(path)
    assert offenders == [], "use cellviewer.ui.common.tasks or cellviewer.ui.common.trainer_process"


def test_the_scan_finds_what_it_looks_for(tmp_path: Path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""QThread in a docstring is fine."""\n'
                      "import threading\n"
                      "from PySide6.QtCore import QProcess\n"
                      "t = threading.Thread(target=print)  # QRunnable in a comment too\n")
    assert sorted(uses(sample)) == ["sample.py:3 QProcess", "sample.py:4 threading.Thread"]
    for name in ALLOWED:
        (path,) = UI.rglob(name)
        assert uses(path), f"{name} no longer uses what this test allows it"
