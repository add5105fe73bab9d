"""A detector trained once per session on synthetic blobs (a few seconds on the CPU), shared
by the detector's tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from detector_testdata import make_blobs, tiny_detector_config


@dataclass
class Trained:
    data: Path  # the folder of the blob images and points.csv
    run: Path  # the run folder
    model: Path  # best.cvmodel
    events: list


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Trained:
    from trainer.detect.train import run_detector_training
    from trainer.engine.events import EventSink

    root = tmp_path_factory.mktemp("detector")
    points = make_blobs(root / "blobs")
    sink = EventSink()
    result = run_detector_training(tiny_detector_config(points, root / "run"), sink=sink,
                                   stop=threading.Event(), log=lambda m: None)
    assert result.status == "finished", result.error
    assert result.best_path is not None
    return Trained(root / "blobs", root / "run", result.best_path, sink.history)
