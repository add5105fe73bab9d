"""``cellviewer detect INPUT… --out detections.csv``: the classical cell detector over images,
slides or folders of them, headless (or a trained detector: ``--method MODEL.cvmodel``, run by
the trainer's detection API, imported only then; ``--device`` picks its device); writes
``image,x,y,score`` in full-resolution pixels.

INPUT: image or slide files, or folders (their images, not their subfolders, in natural name
order). The CSV's ``image`` is the file's path relative to the CSV's folder when it lies under
it, else absolute, so ``cellviewer import`` finds the images beside the CSV by default.

Settings (see ``cellviewer.core.detect``): ``--mode nucleus`` (stain separation, ``--stain
hematoxylin`` for H&E or ``dab`` for IHC) or ``whole-cell`` (cells without a nucleus, such as red
cells); ``--diameter-um D`` (needs the image's pixel size) or ``--diameter-px D``; without
either, the mode's default in µm where the pixel size is known and in pixels where it is not
(said on stderr); ``--sensitivity S`` in [0, 1] (higher finds more).

The output is written atomically (a temporary file renamed over it) once every input is done;
an existing file is refused unless ``--overwrite``. Exit codes: 0 done; 1 nothing written (bad
input, every item failed, a refused output); 2 usage; 3 some inputs failed (each named on
stderr): the others' detections are written. ``--json``: one JSON object per line on stdout
(``started``, ``progress``, ``item-done``, ``item-failed``, ``finished``, ``error``).

A cohort: INPUT a manifest CSV (``slide`` and optional ``regions`` columns) or a project, or
``--shard i/N`` (the slides whose position in the sorted input is i mod N): ``--out`` is then
a folder of per-slide results, ``<slide>.cells.csv`` and ``<slide>.geojson``, each written
atomically as its slide is done, with cell ids that every run agrees on
(:mod:`cellviewer.core.cohort`); a slide that fails is reported and the others go on (exit
3); ``--skip-done`` leaves slides whose files exist as they are.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

from cellviewer.cli.output import Output

CLASSICAL = "classical"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("detect", help="detect cells in images or slides (classical detector)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT",
                   help="image or slide files, or folders of them")
    p.add_argument("--out", type=Path, required=True, help="the detections CSV to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--method", default=CLASSICAL,
                   help="'classical' (the default), or a trained detector MODEL.cvmodel")
    p.add_argument("--mode", choices=("nucleus", "whole-cell"), default="nucleus")
    p.add_argument("--stain", choices=("hematoxylin", "dab"), default="hematoxylin",
                   help="nucleus mode: the nuclear stain (dab for IHC)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--diameter-um", type=float, default=None, metavar="D",
                      help="expected diameter in µm (needs the pixel size)")
    size.add_argument("--diameter-px", type=float, default=None, metavar="D",
                      help="expected diameter in full-resolution pixels")
    p.add_argument("--sensitivity", type=float, default=None, metavar="S",
                   help="0 … 1, higher finds more (default: the mode's tuned value)")
    p.add_argument("--device", default="auto",
                   help="a trained detector's device: auto (CUDA, MPS, CPU), cpu, cuda, cuda:N")
    p.add_argument("--tta", action="store_true",
                   help="a trained detector: average the heatmaps of the 8 orientations "
                        "(test-time augmentation; 8 times slower)")
    p.add_argument("--shard", default=None, metavar="i/N",
                   help="run the slides whose position in the sorted input is i mod N; "
                        "--out is then a folder of per-slide results")
    p.add_argument("--skip-done", action="store_true",
                   help="per-slide results: leave slides whose files exist as they are")
    p.add_argument("--json", action="store_true", help="progress as JSON lines on stdout")
    p.set_defaults(func=run)


class _Reporter(Output):
    """Progress on stderr (a bar on a terminal, a line per image otherwise) or JSON lines."""

    def bar(self, name: str, fraction: float, cells: int, mp_per_s: float) -> None:
        if self.as_json or not self.tty:
            return
        filled = int(30 * fraction)
        sys.stderr.write(f"\r{name[-30:]:30} [{'#' * filled}{'.' * (30 - filled)}] "
                         f"{fraction:4.0%} {cells:,} cells {mp_per_s:.1f} MP/s")
        sys.stderr.flush()


def _usage_error(message: str) -> int:
    from cellviewer.cli.main import EXIT_USAGE

    print(f"cellviewer detect: {message}", file=sys.stderr)
    return EXIT_USAGE


def _expand(inputs: list[Path]) -> list[Path]:
    """The image files of the inputs, folders expanded (their image files, natural order).
    A missing input stays in the list: it fails as an item, with its cause."""
    from cellviewer.core.sources import is_image_file
    from cellviewer.core.sources.folder import natural_key

    out: list[Path] = []
    for path in inputs:
        if path.is_dir():
            out.extend(sorted((p for p in path.iterdir() if p.is_file() and is_image_file(p)),
                              key=natural_key))
        else:
            out.append(path)
    return out


def _image_name(path: Path, out: Path) -> str:
    folder = out.absolute().parent
    full = path.absolute()
    try:
        return full.relative_to(folder).as_posix()
    except ValueError:
        return str(full)


def run(args: argparse.Namespace) -> int:
    from cellviewer.cli.main import EXIT_OK, EXIT_PARTIAL, CommandError
    from cellviewer.core.cohort import is_cohort_input
    from cellviewer.core.detect import DetectParams

    trained = None
    if args.method != CLASSICAL:
        if not args.method.lower().endswith(".cvmodel"):
            return _usage_error(f"--method {args.method!r}: neither 'classical' nor a model "
                                "file (.cvmodel)")
        trained = args.method
    elif args.tta:
        return _usage_error("--tta: only for a trained detector (--method MODEL.cvmodel); the "
                            "classical detector does not depend on the orientation")
    if args.sensitivity is not None and not 0.0 <= args.sensitivity <= 1.0:
        return _usage_error(f"--sensitivity {args.sensitivity:g}: must be between 0 and 1")
    for flag, value in (("--diameter-um", args.diameter_um), ("--diameter-px", args.diameter_px)):
        if value is not None and not value > 0:
            return _usage_error(f"{flag} {value:g}: must be a positive number")
    params = DetectParams(
        mode=args.mode, stain=args.stain,
        diameter=args.diameter_um if args.diameter_um is not None else args.diameter_px,
        unit="px" if args.diameter_px is not None else "um", sensitivity=args.sensitivity)
    if args.shard is not None or any(is_cohort_input(p) for p in args.inputs):
        return _run_cohort(args, params, trained)
    if args.skip_done:
        return _usage_error("--skip-done: only with a manifest, a project or --shard (a "
                            "folder of per-slide results)")
    if args.out.is_dir():
        raise CommandError(f"{args.out}: is a folder; --out names the CSV file to write")
    if args.out.exists() and not args.overwrite:
        raise CommandError(f"{args.out}: exists already; give --overwrite to replace it")
    if not args.out.absolute().parent.is_dir():
        raise CommandError(f"{args.out}: folder {args.out.absolute().parent} does not exist")

    if trained is not None:
        detector = _load_trained(trained, args.device, args.tta)
    rep = _Reporter(args.json)
    paths = _expand(list(args.inputs))
    if not paths:
        raise CommandError(f"{', '.join(map(str, args.inputs))}: no image files in the input")
    rep.event("started", inputs=[str(p) for p in paths], out=str(args.out),
              mode=args.mode if trained is None else "trained", method=args.method)
    t0 = time.monotonic()
    rows: list[tuple[str, float, float, float]] = []
    failed: list[tuple[Path, str]] = []
    for i, path in enumerate(paths):
        try:
            found = (_detect_trained(path, detector, rep, i, len(paths)) if trained
                     else _detect_one(path, params, args, rep, i, len(paths)))
        except _ItemError as exc:
            failed.append((path, str(exc)))
            rep.event("item-failed", image=str(path), message=str(exc))
            rep.say(f"failed: {exc}")
            continue
        name = _image_name(path, args.out)
        rows.extend((name, float(x), float(y), float(s))
                    for x, y, s in zip(found.x, found.y, found.score, strict=True))
        rep.event("item-done", image=str(path), cells=len(found), unit=found.unit,
                  note=found.params.note, elapsed_s=round(found.elapsed_s, 3))
        rep.say(f"{path}: {len(found):,} cells ({found.params.note}; "
                f"{found.megapixels_per_s:.1f} MP/s)")
    if len(failed) == len(paths):
        message = f"nothing written to {args.out}: every input failed"
        rep.event("error", kind="input", message=message)
        raise CommandError(message)
    _write(args.out, rows)
    rep.event("finished", out=str(args.out), cells=len(rows), images=len(paths) - len(failed),
              failed=[str(p) for p, _ in failed], elapsed_s=round(time.monotonic() - t0, 3))
    rep.say(f"wrote {len(rows):,} detections of {len(paths) - len(failed)} images to {args.out}")
    if failed:
        print(f"cellviewer detect: {len(failed)} of {len(paths)} inputs failed:", file=sys.stderr)
        for _path, why in failed:
            print(f"  {why}", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


class _ItemError(Exception):
    """One input that cannot be detected on: the message names the file and the cause."""


def _detect_one(path: Path, params: Any, args: argparse.Namespace, rep: _Reporter, index: int,
                total: int) -> Any:
    from cellviewer.core.detect import detect
    from cellviewer.core.sources import ImageOpenError, open_image

    try:
        source = open_image(path)
    except ImageOpenError as exc:
        raise _ItemError(str(exc)) from None
    with source:
        if args.diameter_um is not None and not source.mpp:
            raise _ItemError(f"{path}: the image does not give its pixel size, so a diameter "
                             "in µm cannot be converted; give --diameter-px instead")

        def progress(p: Any) -> None:
            rep.bar(path.name, p.fraction, p.cells, p.megapixels_per_s)
            rep.event("progress", image=str(path), item=index, items=total,
                      fraction=round(p.fraction, 4), cells=p.cells,
                      megapixels_per_s=round(p.megapixels_per_s, 2))

        try:
            return detect(source, params=params, progress=progress)
        except ImageOpenError as exc:  # ImageReadError: damaged data found while reading
            raise _ItemError(str(exc)) from None


def _load_trained(path: str, device: str, tta: bool = False) -> Any:
    """The trained detector of a model file (the trainer's detection API, imported only
    here: torch is loaded for this method alone). A classifier file is refused by name."""
    from cellviewer.cli.main import CommandError

    try:
        from trainer.detect.infer import load_detector
    except ImportError as exc:  # a build without the trainer's dependencies
        raise CommandError(f"{path}: trained detectors need the trainer (PyTorch): "
                           f"{exc}") from exc
    from trainer.formats.errors import TrainerError

    try:
        return load_detector(path, device=device, tta=tta)
    except TrainerError as exc:
        raise CommandError(str(exc)) from exc


class _TrainedFound:
    """A trained detector's result in the shape the command reports."""

    def __init__(self, found: Any, note: str) -> None:
        self.x, self.y, self.score = found.x, found.y, found.score
        self.unit = "px"
        self.elapsed_s = found.elapsed_s
        self.megapixels_per_s = found.megapixels_per_s
        self.params = type("Note", (), {"note": note})()

    def __len__(self) -> int:
        return len(self.x)


def _detect_trained(path: Path, detector: Any, rep: _Reporter, index: int, total: int) -> Any:
    """A trained detector over one image or slide, read tile by tile at full resolution."""
    from cellviewer.core.detect import tissue_skipper
    from cellviewer.core.sources import ImageOpenError, open_image

    try:
        source = open_image(path)
    except ImageOpenError as exc:
        raise _ItemError(str(exc)) from None
    with source:
        w, h = source.dimensions
        skip = tissue_skipper(source)  # plain glass is not read (a slide with a pyramid)

        def read(x: int, y: int, rw: int, rh: int) -> Any:
            return source.read_region(0, x, y, rw, rh)

        def progress(done: int, tiles: int, cells: int) -> None:
            rep.bar(path.name, done / tiles, cells, 0.0)
            rep.event("progress", image=str(path), item=index, items=total,
                      fraction=round(done / tiles, 4), cells=cells)

        try:
            found = detector.detect_reader(w, h, read, progress=progress, skip=skip)
        except ImageOpenError as exc:
            raise _ItemError(str(exc)) from None
    note = (f"trained detector {Path(str(detector.path)).name}, threshold "
            f"{detector.threshold:.3f}, diameter {detector.diameter_px:g} px"
            + (", 8 orientations averaged" if getattr(detector, "tta", False) else "")
            + (f", on {detector.backend_note}" if getattr(detector, "backend_note", "") else ""))
    return _TrainedFound(found, note)


def _write(out: Path, rows: list[tuple[str, float, float, float]]) -> None:
    from cellviewer.cli.main import CommandError
    from cellviewer.core.export.atomic import ExportError, atomic_write

    try:
        with atomic_write(out) as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["image", "x", "y", "score"])
            w.writerows((name, f"{x:.2f}", f"{y:.2f}", f"{s:.4f}") for name, x, y, s in rows)
    except ExportError as exc:
        raise CommandError(str(exc)) from exc


def _run_cohort(args: argparse.Namespace, params: Any, trained: str | None) -> int:
    """A manifest, a project or ``--shard``: per-slide results in the ``--out`` folder
    (:func:`cellviewer.core.cohort.detect_slide` per slide of the shard)."""
    from cellviewer.cli.cohort_run import cohort_items, error_events, prepare_out, run_cohort
    from cellviewer.core.cohort import detect_slide

    try:
        with error_events(args.json):
            items, shard = cohort_items(list(args.inputs), args.shard)
    except ValueError as exc:
        return _usage_error(str(exc))
    with error_events(args.json):  # a refused model or folder: nothing written
        detector = (_load_trained(trained, args.device, args.tta) if trained is not None
                    else None)
        prepare_out(args.out)
    return run_cohort("detect", items, args.out, args.json,
                      lambda item, progress: detect_slide(item, args.out, params,
                                                          detector=detector,
                                                          skip_done=args.skip_done,
                                                          progress=progress),
                      shard=shard, mode=args.mode if trained is None else "trained",
                      method=args.method)
