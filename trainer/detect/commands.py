"""CLI commands of the detector: ``train-detector`` and ``detect``. Heavy imports happen inside
the commands so ``python -m trainer --help`` stays instant."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer.cli import command, emit_error_event

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


# ---- train-detector -------------------------------------------------------------------------
def _add_train_detector_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="a detector run configuration (JSON); flags "
                   "override it")
    p.add_argument("--points", help="a points table (image,x,y) of fully annotated images")
    p.add_argument("--images", help="the folder of the table's images (default: its folder)")
    p.add_argument("--image-list", type=Path, help="a file naming the fully annotated images "
                   "to use, one a line (or a CSV with an 'image' column); default: all")
    p.add_argument("--regions", help="a JSON file of fully annotated regions (boxes or "
                   "polygons with their points)")
    p.add_argument("--out", dest="out_dir", help="the run folder (created)")
    p.add_argument("--diameter-px", type=float, help="the cells' diameter in pixels "
                   "(default 16)")
    p.add_argument("--downsample", type=int, help="working resolution 1/N (default: from the "
                   "diameter, about 10 working pixels per cell)")
    p.add_argument("--width", type=int, help="channels of the first level (default 16)")
    p.add_argument("--depth", type=int, help="U-Net levels (default 2)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--steps-per-epoch", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--crop-px", type=int, help="training crop size in working pixels")
    p.add_argument("--lr", type=float)
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--stain-jitter", type=float, help="with --augment: HED stain jitter "
                   "strength (default 0: none; 0.05 light, 0.1 strong)")
    p.add_argument("--partial-labels", action=argparse.BooleanOptionalAction, default=None,
                   help="labels mark only some cells: ignore what lies far from every label")
    p.add_argument("--unstained-is-background", action=argparse.BooleanOptionalAction,
                   default=None, help="with --partial-labels: far from every label, pixels "
                   "whose haematoxylin is below that of 95%% of the labelled nuclei are "
                   "background (only what could be a nucleus is ignored)")
    p.add_argument("--ignore-beyond", type=float, help="with --partial-labels: the distance "
                   "(in diameters) beyond which pixels are ignored (default 1)")
    p.add_argument("--val-fraction", type=float, help="share of images held out to choose "
                   "the threshold (default 0.2)")
    p.add_argument("--match-radius-px", type=float)
    p.add_argument("--device", help="auto (default: CUDA, MPS, CPU), cpu, cuda, cuda:N, mps")
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", dest="num_threads", type=int, help="CPU threads for torch")
    p.add_argument("--heartbeat", dest="heartbeat_s", type=float)
    p.add_argument("--resume", nargs="?", const="", metavar="PATH",
                   help="continue from a run's last model file (a run folder or a .cvmodel; "
                        "without PATH: the --out run folder)")
    p.add_argument("--json", action=argparse.BooleanOptionalAction, default=None,
                   help="protocol lines on stdout (default: unless stdout is a terminal)")


_FLAGS = ("points", "images", "regions", "out_dir", "diameter_px", "downsample", "width",
          "depth", "epochs", "steps_per_epoch", "batch_size", "crop_px", "lr", "augment",
          "stain_jitter", "partial_labels", "unstained_is_background", "ignore_beyond",
          "val_fraction", "match_radius_px", "device", "seed", "num_threads", "heartbeat_s")


def read_image_list(path: Path) -> list[str]:
    """Image names, one a line, or the ``image`` column of a CSV (blank lines skipped)."""
    import csv

    from trainer.detect.data import DetectorDataError

    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DetectorDataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    lines = text.splitlines()
    if lines and "," in lines[0] and "image" in [h.strip().lower() for h in lines[0].split(",")]:
        return [r["image"].strip() for r in csv.DictReader(lines) if r.get("image", "").strip()]
    names = [ln.strip() for ln in lines if ln.strip()]
    if not names:
        raise DetectorDataError(f"{path}: names no images")
    return names


def _detector_config(args: argparse.Namespace):
    from trainer.detect.modelfile import load_detector_file
    from trainer.engine.loop import LAST_MODEL
    from trainer.formats.detector_config import DetectorConfigError, DetectorRunConfig

    overrides = {k: getattr(args, k) for k in _FLAGS if getattr(args, k) is not None}
    if args.image_list is not None:
        overrides["image_list"] = read_image_list(args.image_list)
    base = DetectorRunConfig.load(args.config).to_dict() if args.config else None
    resume_path = None
    if args.resume is not None:
        if args.resume:
            p = Path(args.resume)
            resume_path = p / LAST_MODEL if p.is_dir() else p
        else:
            out = overrides.get("out_dir") or (base or {}).get("out_dir")
            if not out:
                raise DetectorConfigError("--resume without a path needs --config or --out")
            resume_path = Path(out) / LAST_MODEL
        if base is None:
            meta = load_detector_file(resume_path).meta
            base = dict(meta.get("config", {}))
            base["out_dir"] = str(resume_path.parent)
    if base is None:
        if "out_dir" not in overrides:
            raise DetectorConfigError("train-detector needs --config or --out")
        base = {}
    base.pop("config_version", None)
    base.update(overrides)
    where = str(args.config) if args.config else "command line"
    return DetectorRunConfig.from_dict(base, where), resume_path


class _Progress:
    """Detector training on a terminal: a line per epoch, the others' gist."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def __call__(self, ev: dict) -> None:
        kind = ev.get("event")
        text = None
        if kind == "started":
            text = (f"training a cell detector on {ev['device_name']}: {ev['n_train']:,} cells "
                    f"in {ev['n_train_areas']} areas, {ev['n_val']:,} validation cells in "
                    f"{ev['n_val_areas']} areas, working at 1/{ev['downsample']}")
        elif kind == "batch":
            self.stream.write(f"\repoch {ev['epoch']}/{ev['epochs']} step {ev['step']}/"
                              f"{ev['steps']} loss {ev['train_loss']:.4f} "
                              f"{ev['samples_per_s']:.0f} crops/s   ")
        elif kind == "epoch":
            text = (f"\repoch {ev['epoch']}/{ev['epochs']}: loss {ev['train_loss']:.4f} | val "
                    f"P {ev['val_precision']:.3f} R {ev['val_recall']:.3f} F1 "
                    f"{ev['val_f1']:.3f} at threshold {ev['threshold']:.3f} | "
                    f"{ev['epoch_s']:.1f} s{' *' if ev.get('improved') else ''}")
        elif kind == "stopped":
            text = f"stopped: {ev['reason']} after epoch {ev['epoch']} {ev.get('detail') or ''}"
        elif kind == "finished":
            text = f"finished: best epoch {ev['best_epoch']} -> {ev['model_path']}"
        elif kind == "error":
            text = f"ERROR ({ev['kind']}): {ev['message']}"
        elif kind == "notice":
            text = f"note: {ev['message']}"
        if text is not None:
            self.stream.write(text + "\n")
        self.stream.flush()


@command("train-detector", "train a cell detector (centre heatmap) on fully annotated "
         "images or regions (JSON progress lines on stdout)", _add_train_detector_args)
def cmd_train_detector(args: argparse.Namespace) -> int:
    from trainer.engine.control import StopControl
    from trainer.engine.events import EventSink
    from trainer.formats.errors import classify_exception

    tty = sys.stdout.isatty()
    as_json = args.json if args.json is not None else not tty
    listeners = [_Progress(sys.stderr)] if (tty or not as_json) else []
    sink = EventSink(stdout=sys.stdout if as_json else None, listeners=listeners)
    try:
        cfg, resume_path = _detector_config(args)
    except Exception as exc:  # a refused configuration is still reported as an event
        kind, message = classify_exception(exc)
        sink.emit("error", kind=kind, message=message)
        if not listeners:
            sys.stderr.write(f"error ({kind.value}): {message}\n")
        return EXIT_USAGE
    from trainer.detect.train import run_detector_training

    control = StopControl()
    control.watch_stdin()
    control.install_signal_handlers()
    result = run_detector_training(cfg, sink=sink, stop=control, resume_from=resume_path)
    if result.status == "error" and not listeners:
        sys.stderr.write(f"error ({result.error_kind}): {result.error}\n")
    return result.exit_code


# ---- detect ---------------------------------------------------------------------------------
def _add_detect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="a detector model file (.cvmodel)")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--out", type=Path, required=True, help="the CSV (image,x,y,score) to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, cuda:N")
    p.add_argument("--threshold", type=float, help="probability threshold (default: the "
                   "model's, chosen on its validation images)")
    p.add_argument("--tile", type=int, default=512, help="tile size in working pixels")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average the heatmaps of the 8 orientations "
                        "(8 times slower)")


def _image_name(path: Path, out: Path) -> str:
    """Relative to the CSV's folder when under it (``cellviewer import`` finds it), else
    absolute: the rule of ``cellviewer detect``."""
    try:
        return path.absolute().relative_to(out.absolute().parent).as_posix()
    except ValueError:
        return str(path.absolute())


def _fail(message: str, kind=None) -> int:
    from trainer.formats.protocol import ErrorKind

    sys.stderr.write(f"python -m trainer detect: {message}\n")
    emit_error_event(kind or ErrorKind.BAD_ARGUMENTS, message)
    return EXIT_FAILED


@command("detect", "find cells with a trained detector: image,x,y,score as CSV",
         _add_detect_args)
def cmd_detect(args: argparse.Namespace) -> int:
    import csv

    from trainer.formats.errors import classify_exception

    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        sys.stderr.write(f"python -m trainer detect: --threshold {args.threshold:g}: must be "
                         "between 0 and 1\n")
        return EXIT_USAGE
    if args.tile < 16:
        sys.stderr.write("python -m trainer detect: --tile must be at least 16\n")
        return EXIT_USAGE
    if args.out.exists() and not args.overwrite:
        return _fail(f"{args.out}: exists already; give --overwrite to replace it")
    from trainer.detect.data import DetectorDataError, read_rgb
    from trainer.detect.infer import load_detector

    try:
        detector = load_detector(args.model, device=args.device, tta=args.tta)
    except Exception as exc:
        kind, message = classify_exception(exc)
        return _fail(message, kind)
    rows: list[tuple[str, float, float, float]] = []
    failed = []
    for path in args.images:
        try:
            rgb = read_rgb(path) if path.is_file() else None
            if rgb is None:
                raise DetectorDataError(f"{path}: image not found")
            found = detector.detect_array(rgb, tile=args.tile, threshold=args.threshold)
        except DetectorDataError as exc:
            failed.append(str(exc))
            sys.stderr.write(f"failed: {exc}\n")
            continue
        name = _image_name(path, args.out)
        rows.extend((name, x, y, s) for x, y, s in zip(found.x, found.y, found.score,
                                                         strict=True))
        sys.stderr.write(f"{path}: {len(found):,} cells ({found.megapixels_per_s:.2f} MP/s)\n")
    if len(failed) == len(args.images):
        return _fail(f"nothing written to {args.out}: every input failed")
    tmp = args.out.with_name(args.out.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["image", "x", "y", "score"])
        w.writerows((n, f"{x:.2f}", f"{y:.2f}", f"{s:.4f}") for n, x, y, s in rows)
    tmp.replace(args.out)
    sys.stderr.write(f"wrote {len(rows):,} detections of {len(args.images) - len(failed)} "
                     f"images to {args.out}\n")
    return EXIT_PARTIAL if failed else EXIT_OK
