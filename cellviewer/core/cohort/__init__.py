"""Cohort scoring: detecting and classifying the cells of many slides, spread over machines by
engines labs already have (a Slurm array, a Dask cluster, ``xargs -P``), not a scheduler of
our own.

>>> items = read_inputs(["manifest.csv"])              # sorted; or a project's images
>>> mine = shard(items, 0, 4)                          # what --shard 0/4 runs
>>> outcome = detect_slide(mine[0], "results/")        # <key>.cells.csv and <key>.geojson

Modules: :mod:`.manifest` (the items and shards), :mod:`.ids` (cell ids every run agrees on),
:mod:`.results` (the per-slide files, written atomically), :mod:`.scoring` (one slide
detected or classified: the unit a Dask task or a shard's loop runs), :mod:`.summary` (the
cohort's totals). Qt-free and torch-free: :func:`predict_slide` is handed a loaded predictor
(``cellviewer.cli.cohort_tasks`` loads one from a model file, for the command and for Dask).
"""

from .ids import cell_ids
from .manifest import (
    CohortItem,
    ManifestError,
    is_cohort_input,
    parse_shard,
    project_items,
    read_inputs,
    read_manifest,
    shard,
    slide_key,
)
from .results import SlideResult, is_done, read_cells, result_files, write_result
from .scoring import SlideOutcome, detect_slide, predict_slide
from .summary import CohortSummary

__all__ = ["CohortItem", "CohortSummary", "ManifestError", "SlideOutcome", "SlideResult",
           "cell_ids", "detect_slide", "is_cohort_input", "is_done", "parse_shard",
           "predict_slide", "project_items", "read_cells", "read_inputs", "read_manifest",
           "result_files", "shard", "slide_key", "write_result"]
