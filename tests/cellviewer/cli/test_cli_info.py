"""The headless commands: ``cellviewer info`` on a real project file (the schema fixture), its
refusal of a file that is not a project, and the dispatch rules of ``cellviewer COMMAND``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from cellviewer.app import main as app_main
from cellviewer.cli.main import is_command, main
from cellviewer.core.store import SCHEMA_VERSION

# The fixture of the current schema version: older ones open read-only only after upgrading.
FIXTURE = (Path(__file__).resolve().parents[2] / "fixtures"
           / f"project-v{SCHEMA_VERSION}.cvproj")


def _copy(tmp_path: Path) -> Path:
    path = tmp_path / "cohort.cvproj"
    shutil.copy(FIXTURE, path)
    return path


def test_info_reports_images_classes_models_as_json(tmp_path, capsys):
    assert main(["info", str(_copy(tmp_path)), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["cells"] == 352 and len(info["images"]) == 3
    assert sum(c["cells"] for c in info["classes"]) + info["unlabelled"] == 352
    assert [{k: m[k] for k in ("name", "arch", "predictions")} for m in info["models"]] == \
        [{"name": "fixture model", "arch": "cnn", "predictions": 132}]
    assert info["schema_version"] == SCHEMA_VERSION


def test_info_as_text_and_through_the_app_entry_point(tmp_path, capsys):
    path = _copy(tmp_path)
    assert app_main(["info", str(path)]) == 0  # `cellviewer info …` is the command, no window
    out = capsys.readouterr().out
    assert "352 cells" in out and "fixture model (cnn;" in out and "132 predictions" in out


def test_a_file_that_is_not_a_project_is_refused_by_name(tmp_path, capsys):
    junk = tmp_path / "notes.cvproj"
    junk.write_text("not a project\n" * 50)
    assert main(["info", str(junk)]) == 1
    err = capsys.readouterr().err
    assert "notes.cvproj" in err and "Traceback" not in err


def test_dispatch_and_conventions(tmp_path):
    assert is_command(["info", "x.cvproj"])
    assert not is_command(["./info"]) and not is_command([]) and not is_command(["a.cvproj"])
    done = subprocess.run([sys.executable, "-m", "cellviewer", "info", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "PROJECT" in done.stdout.upper()
    done = subprocess.run([sys.executable, "-m", "cellviewer", "info"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2  # usage
