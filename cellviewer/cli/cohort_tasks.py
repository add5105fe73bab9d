"""The cohort's tasks as a cluster runs them: plain functions of picklable arguments (an item,
folders, a model file's path), one slide per call, for Dask (``client.map``) and for the
``cellviewer detect``/``predict`` loops alike.

Why here and not in the core: classifying loads the trainer's prediction API (torch), which
``cellviewer.core`` never imports; the model is loaded once per process (a Dask worker scores
many slides with one model) and kept.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from cellviewer.core.cohort import CohortItem, SlideOutcome, detect_slide, predict_slide

__all__ = ["detect_slide", "load_predictor", "predict_slide_task"]


@functools.lru_cache(maxsize=2)
def load_predictor(path: str, device: str = "auto") -> Any:
    """The trainer's predictor of a model file, loaded once per process and device.
    ``trainer.formats.errors.TrainerError`` naming the file when it cannot be loaded."""
    from trainer.predict import Predictor

    return Predictor.load(path, device=device)


def predict_slide_task(item: CohortItem, out: str | os.PathLike, model: str | os.PathLike, *,
                       cells: str | os.PathLike | None = None, tta: bool = False,
                       device: str = "auto", skip_done: bool = False) -> SlideOutcome:
    """:func:`cellviewer.core.cohort.predict_slide` with the model of a file (a model that
    cannot be loaded is the slide's failure, with its cause)."""
    from trainer.formats.errors import TrainerError

    try:
        predictor = load_predictor(str(model), device)
    except (TrainerError, RuntimeError, ValueError) as exc:
        return SlideOutcome(item.name, item.key, False, message=f"{model}: {exc}")
    return predict_slide(item, out, predictor, cells=cells, tta=tta, skip_done=skip_done)
