"""A damaged ``events.jsonl`` still gives a run summary: the damaged events are left out and
named, and the run reads as damaged-but-readable instead of breaking the run list (issue 14,
item 10)."""

from __future__ import annotations

import json
from pathlib import Path

from cellviewer.core.training.runs import FINISHED, RunRegistry, RunSummary


def _line(**fields) -> str:
    return json.dumps({"v": 1, **fields})


def test_a_damaged_events_file_is_summarised_with_what_was_left_out(tmp_path: Path):
    run = RunRegistry(tmp_path / "p.cvproj").create("r1", launched_at="2026-01-01")
    lines = [
        _line(event="started", epochs=3, classes=["a", "b"]),
        _line(event="epoch", epoch=1, val_acc=0.5),
        _line(event="epoch", epoch="two", val_acc=0.9),  # not a number
        _line(event="epoch", epoch=None, val_acc=0.9),
        '{"v": 1, "event": "epoch", "epoch": NaN, "val_acc": 0.9}',  # Python's json reads NaN
        _line(event="epoch", epoch=True, val_acc=0.9),
        _line(event="epoch", epoch=3.0, val_acc=0.7),  # another writer's 3.0 is epoch 3
        "not json at all",
        _line(event="finished", model_path=str(run.folder / "best.cvmodel"), best_epoch=3),
    ]
    run.events_path.write_text("\n".join(lines) + "\n")
    summary = run.summary()
    assert [e["epoch"] for e in summary.epochs] == [1, 3.0]
    assert summary.is_damaged and len(summary.damaged) == 4
    assert "'two' is not a whole number" in summary.damaged[0]
    assert summary.best_epoch is not None and summary.best_epoch["val_acc"] == 0.7
    assert summary.classes == ["a", "b"] and summary.total_epochs == 3
    assert run.status() == FINISHED


def test_an_intact_run_is_not_damaged():
    summary = RunSummary.from_events([{"event": "epoch", "epoch": 1}, {"event": "epoch"}])
    assert [e.get("epoch") for e in summary.epochs] == [1, None] and not summary.is_damaged
