"""``cellviewer predict INPUT… --model MODEL.cvmodel --out OUT [--tta] [--shard i/N]``: classify
the cells of a cohort, slide by slide, headless, with the trainer's prediction API (imported
only here: torch loads for this command alone).

INPUT: a project (its images and their cells, with the project's cell ids), or a manifest CSV
(``slide`` and optional ``regions`` columns) with ``--cells DIR``, the folder ``cellviewer
detect`` wrote for it (``<slide>.cells.csv``: the cells and their ids). OUT: a folder; per
slide ``<slide>.cells.csv`` (cell_id, image, x, y, predicted_class, confidence, p_<class>…)
and ``<slide>.geojson`` (QuPath GeoJSON with the same cells, ids and probabilities), each
written atomically; ``cellviewer import PROJECT OUT`` brings them into a project.

The model's classes must be the project's: a model with a class the project lacks (or spells
differently) is refused before anything is read or written (exit 1, naming both lists).
``--tta``: the mean over the 8 orientations of each patch. ``--device``: auto (CUDA, MPS,
CPU), cpu, cuda, cuda:N. ``--shard i/N``, ``--skip-done``, ``--json`` and the exit codes (0,
1, 2, 3 some slides failed) as ``../shared/design/cli.md`` sets them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("predict", help="classify the cells of a project or a cohort, per slide",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT",
                   help="a project (.cvproj) or a manifest CSV (with --cells)")
    p.add_argument("--model", type=Path, required=True, help="the model file (.cvmodel)")
    p.add_argument("--out", type=Path, required=True, help="the folder of per-slide results")
    p.add_argument("--cells", type=Path, default=None, metavar="DIR",
                   help="a manifest's cells: the folder cellviewer detect wrote")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: mean over the 8 orientations")
    p.add_argument("--shard", default=None, metavar="i/N",
                   help="run the slides whose position in the sorted input is i mod N")
    p.add_argument("--skip-done", action="store_true",
                   help="leave slides whose result files exist as they are")
    p.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="progress as JSON lines on stdout")
    p.set_defaults(func=run)


def _usage_error(message: str) -> int:
    from cellviewer.cli.main import EXIT_USAGE

    print(f"cellviewer predict: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    from cellviewer.cli.cohort_run import cohort_items, error_events, prepare_out, run_cohort
    from cellviewer.cli.main import CommandError
    from cellviewer.core.cohort import predict_slide

    if args.model.suffix.lower() != ".cvmodel":
        return _usage_error(f"--model {args.model}: not a model file (.cvmodel)")
    try:
        with error_events(args.json):
            items, shard = cohort_items(list(args.inputs), args.shard)
    except ValueError as exc:
        return _usage_error(str(exc))
    with error_events(args.json):
        without = [i for i in items if i.project is None]
        if without and args.cells is None:
            raise CommandError(f"{without[0].where}: slide {without[0].name} has no cells to "
                               "classify: give --cells DIR, the folder cellviewer detect wrote")
        if args.cells is not None and not args.cells.is_dir():
            raise CommandError(f"--cells {args.cells}: no such folder")
        _check_classes(args.model, _model_classes(args.model), args.inputs)
        predictor = _load(args.model, args.device)
        prepare_out(args.out)
    return run_cohort("predict", items, args.out, args.json,
                      lambda item, progress: predict_slide(
                          item, args.out, predictor, cells=args.cells, tta=args.tta,
                          skip_done=args.skip_done, progress=progress),
                      shard=shard, model=str(args.model), classes=list(predictor.classes),
                      tta=args.tta, device=str(predictor.device))


def _load(path: Path, device: str) -> Any:
    """The model, loaded once for the shard; a missing, damaged or foreign file refused by
    name (exit 1)."""
    from cellviewer.cli.main import CommandError

    try:
        from cellviewer.cli.cohort_tasks import load_predictor
        from trainer.formats.errors import TrainerError

        return load_predictor(str(path), device)
    except ImportError as exc:  # a build without the trainer's dependencies
        raise CommandError(f"{path}: classifying needs the trainer (PyTorch): {exc}") from exc
    except (TrainerError, ValueError, RuntimeError) as exc:
        raise CommandError(f"{path}: cannot load the model ({exc})") from exc


def _model_classes(path: Path) -> list[str]:
    """The model file's classes from its header (no torch: a refusal costs nothing)."""
    from cellviewer.cli.main import CommandError
    from trainer.formats.errors import TrainerError
    from trainer.formats.model_header import read_model_header

    try:
        return [str(c) for c in read_model_header(path)["classes"]]
    except (TrainerError, KeyError, TypeError) as exc:
        raise CommandError(str(exc) if isinstance(exc, TrainerError) else
                           f"{path}: a model file without classes ({exc})") from exc


def _check_classes(model: Path, classes: list[str], inputs: list[Path]) -> None:
    """Refuse a model whose classes are not the project's (before any slide is read)."""
    from cellviewer.cli.main import CommandError
    from cellviewer.core.predict.job import match_classes
    from cellviewer.core.store import ProjectError, ProjectStore

    for project in (p for p in inputs if p.suffix.lower() == ".cvproj"):
        try:
            with ProjectStore.open(project, readonly=True) as store:
                names = [c.name for c in store.classes()]
        except ProjectError as exc:
            raise CommandError(str(exc)) from exc
        match = match_classes(classes, names)
        if names and not match.compatible:
            raise CommandError(
                f"{model}: the model's classes ({', '.join(classes)}) do not match those of "
                f"{project} ({', '.join(names)}); nothing was classified.\n"
                + match.describe())
