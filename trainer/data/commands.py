"""CLI commands of the data area: ``sample`` (the sampling report) and ``build-patchset``.

Heavy imports happen inside the commands so ``python -m trainer --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from trainer.cli import command


def _limits(text: str) -> list[int]:
    try:
        limits = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text}") from None
    if not limits or min(limits) < 1:
        raise argparse.ArgumentTypeError("FlagLimits must be positive integers")
    return limits


def _add_points_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", help="keep only the rows whose 'split' column equals this")
    p.add_argument("--class-column", default=None,
                   help="column holding the class (default: 'class', else 'class_id')")
    p.add_argument("--class-names", default=None,
                   help="names of integer class ids: a known list (chula-rbc-12), a JSON class "
                        "set file ({'classes': [{'name': ...}]} or a list), or name1,name2,...")


def _class_names(spec: str | None) -> list[str] | None:
    from trainer.data.build import KNOWN_CLASS_LISTS
    from trainer.formats.patchset import PatchSetError

    if spec is None:
        return None
    if spec in KNOWN_CLASS_LISTS:
        return list(KNOWN_CLASS_LISTS[spec])
    path = Path(spec)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PatchSetError(f"{path}: cannot read the class list ({exc})") from exc
        items = data.get("classes", []) if isinstance(data, dict) else data
        return [c["name"] if isinstance(c, dict) else str(c) for c in items]
    return [name.strip() for name in spec.split(",")]


def _class_column(csv_path: Path, given: str | None) -> str | None:
    """The class column asked for; None lets the reader recognise it (``class``, else
    ``class_id``)."""
    return given or None


def _add_sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", type=Path, help="a patch set folder or a points CSV")
    p.add_argument("--limits", type=_limits, default=None,
                   help="comma-separated FlagLimits (default: 256,...,16384)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--csv", type=Path, metavar="OUT", help="also write the report as CSV")
    _add_points_options(p)


@command("sample", "FlagLimit sampling report of a patch set or points CSV", _add_sample_args)
def cmd_sample(args: argparse.Namespace) -> int:
    from trainer.data.build import read_points_csv
    from trainer.formats.patchset import PatchSetError, load_patchset
    from trainer.formats.sampling import FLAG_LIMITS, sampling_report

    try:
        if args.source.is_dir():
            ps = load_patchset(args.source)
            labels, classes = ps.labels, ps.classes
        else:
            table = read_points_csv(
                args.source, split=args.split, class_names=_class_names(args.class_names),
                class_column=_class_column(args.source, args.class_column))
            labels, classes = table.labels, table.classes
    except PatchSetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = sampling_report(labels, classes, args.limits or FLAG_LIMITS, args.val_fraction)
    print(report.format_table())
    if args.csv:
        report.to_csv(args.csv)
        print(f"wrote {args.csv}")
    return 0


def _add_build_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("points", type=Path, help="points CSV: image,x,y,class (or class_id)")
    p.add_argument("images", type=Path, help="folder holding the images the CSV names")
    p.add_argument("out", type=Path, help="patch set folder to write (e.g. name.patches)")
    p.add_argument("--fov", type=float, default=40.0,
                   help="field of view in image pixels, resized to 40x40 (default 40)")
    p.add_argument("--keep-source-crops", action="store_true",
                   help="also store the crops before resizing (for pre-resize blur)")
    _add_points_options(p)


@command("build-patchset", "build a patch set from a points CSV and its images", _add_build_args)
def cmd_build_patchset(args: argparse.Namespace) -> int:
    import numpy as np

    from trainer.data.build import build_from_points_csv
    from trainer.formats.patchset import PatchSetError

    t0 = time.perf_counter()
    try:
        ps = build_from_points_csv(
            args.points, args.images, args.out, args.fov, split=args.split,
            keep_source_crops=args.keep_source_crops,
            class_column=_class_column(args.points, args.class_column),
            class_names=_class_names(args.class_names),
        )
    except PatchSetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - t0
    counts = np.bincount(ps.labels[ps.labels >= 0], minlength=len(ps.classes))
    print(f"wrote {args.out}: {len(ps)} cells from {len(set(ps.sources))} images, "
          f"{ps.n_padded} padded (reflect), in {seconds:.1f} s")
    for name, k in zip(ps.classes, counts, strict=True):
        print(f"  {name:<20} {int(k):>7}")
    return 0
