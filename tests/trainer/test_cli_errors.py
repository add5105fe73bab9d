"""A command line the trainer cannot parse still ends with the protocol's ``error`` event on
stdout (kind ``bad-arguments``) and exit code 2, so a program reading the trainer's output
learns why it ended from one place (issue 14, item 10)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trainer.cli import main
from trainer.formats.protocol import parse_line

ROOT = Path(__file__).resolve().parents[2]


def _last_event(text: str) -> dict:
    events = [e for e in map(parse_line, text.splitlines()) if e]
    assert events, f"no protocol event in {text!r}"
    return events[-1]


@pytest.mark.parametrize("argv", [
    ["predict", "--model", "m.cvmodel", "--patchset", "p", "--out", "o.csv",
     "--batch-size", "many"],  # a type error
    ["train", "--no-such-option"],
    ["no-such-command"],
])
def test_an_argument_error_is_an_error_event_and_exit_code_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    out = capsys.readouterr()
    event = _last_event(out.out)
    assert event["event"] == "error" and event["kind"] == "bad-arguments"
    assert "usage:" in out.err


def test_the_trainer_process_reports_a_type_error_as_an_event():
    done = subprocess.run(
        [sys.executable, "-m", "trainer", "predict", "--model", "m", "--patchset", "p",
         "--out", "o", "--blur-sigma", "blurry"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2
    event = _last_event(done.stdout)
    assert event["kind"] == "bad-arguments" and "--blur-sigma" in event["message"]
