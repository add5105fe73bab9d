"""Accuracy and speed of the trained detector (trainer.detect), issue 15.

Trains through the real command line (``python -m trainer train-detector``, JSON progress on
stdout), then detects with the best model file and scores it with ``bench_detect.py``'s
one-to-one (Hungarian) matching:

- Chula RBC-12: trained on the training images of ``benchmarks/splits/chula-rbc-12-split.csv``
  judged fully labelled (``bench_detect.label_completeness`` >= 0.6; 20 % of them hold out to
  choose the threshold), scored on the fully labelled test images (radius 12 px: precision,
  recall, F1 exact there; detections on white cells/platelets counted and said) and, for
  recall only, on all test images.
- CRC: trained on the ``train`` tiles with partial labels (what lies farther than one diameter
  from every label is ignored; ``--crc-full-background`` trains calling it background instead),
  scored on the 10 ``validation`` tiles (radius 6 px: recall exact, precision a lower bound).

Runs folders go under ``--work`` (default /tmp/bench_detect_trained), never into the
repository: a model trained on CRC must not be committed. A run longer than ``--max-minutes``
is stopped through the protocol (``stop`` on stdin) and its best model is scored.

    .venv/bin/python benchmarks/bench_detect_trained.py                 # both datasets
    .venv/bin/python benchmarks/bench_detect_trained.py --only chula --chula-epochs 12
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_detect as bd  # noqa: E402  (the matching and the data of the classical bench)

#: a red cell's radius (Chula cells are 40-50 px across): a cell whose centre is nearer the
#: border than this is cut by it
EDGE_MARGIN = 22.0


def train(name: str, args: list[str], work: Path, max_minutes: float, threads: int) -> dict:
    """Run ``train-detector`` with ``args``; the ``finished`` event, with ``wall_s``."""
    run = work / name
    cmd = [sys.executable, "-m", "trainer", "train-detector", "--out", str(run), "--json",
           "--threads", str(threads), "--heartbeat", "30", *args]
    print("$", " ".join(cmd), flush=True)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)
    assert proc.stdin is not None and proc.stdout is not None
    timer = threading.Timer(max_minutes * 60, lambda: _stop(proc))
    timer.start()
    finished: dict = {}
    for line in proc.stdout:
        ev = json.loads(line) if line.startswith("{") else {}
        if ev.get("event") == "epoch":
            print(f"  epoch {ev['epoch']}/{ev['epochs']}: loss {ev['train_loss']:.4f} val P "
                  f"{ev['val_precision']:.3f} R {ev['val_recall']:.3f} F1 {ev['val_f1']:.3f} "
                  f"thr {ev['threshold']:.3f} ({ev['epoch_s']:.0f} s)", flush=True)
        elif ev.get("event") in ("notice", "error", "stopped"):
            print(f"  {ev['event']}: {ev.get('message') or ev.get('reason')}", flush=True)
        elif ev.get("event") == "finished":
            finished = ev
    proc.wait()
    timer.cancel()
    finished["wall_s"] = time.monotonic() - t0
    if not finished.get("model_path"):
        raise SystemExit(f"{name}: training failed (exit {proc.returncode})")
    return finished


def _stop(proc: subprocess.Popen) -> None:
    try:
        assert proc.stdin is not None
        proc.stdin.write("stop\n")
        proc.stdin.flush()
    except (OSError, ValueError):
        pass


def inside_margin(xy: np.ndarray, shape: tuple[int, ...], margin: float) -> np.ndarray:
    """The points at least ``margin`` px from every border of an image of ``shape``."""
    h, w = shape[:2]
    return (xy[:, 0] >= margin) & (xy[:, 0] < w - margin) & (xy[:, 1] >= margin) & \
        (xy[:, 1] < h - margin)


def evaluate(model: str, images: list[tuple[str, np.ndarray, np.ndarray]], radius: float,
             leuko: bool = False, margin: float = 0.0, tta: bool = False) -> dict:
    """Scores of ``model`` on ``images``; ``margin``: labels and detections nearer than this
    to the image's border are left out of both (Chula labels a red cell cut by the border in
    some images and not in others); ``tta``: the 8 orientations averaged."""
    from trainer.detect.infer import load_detector

    det = load_detector(model, device="cpu", tta=tta)
    tp = n_pred = n_truth = fp_leuko = 0
    mpix = secs = 0.0
    for _name, rgb, truth in images:
        t = time.perf_counter()
        found = det.detect_array(rgb)
        secs += time.perf_counter() - t
        mpix += rgb.shape[0] * rgb.shape[1] / 1e6
        pred = found.xy()
        if margin > 0:
            pred = pred[inside_margin(pred, rgb.shape, margin)]
            truth = truth[inside_margin(truth, rgb.shape, margin)]
        k, matched = bd.match(pred, truth, radius)
        tp, n_pred, n_truth = tp + k, n_pred + len(pred), n_truth + len(truth)
        if leuko and len(pred):
            fp = ~matched
            fp_leuko += int(bd.on_leukocyte_or_platelet(bd.leukocyte_mask(rgb), pred[fp, 0],
                                                        pred[fp, 1]).sum())
    out = bd.scores(tp, n_pred, n_truth)
    out["megapixels_per_s"] = mpix / secs if secs else 0.0
    out["threshold"] = det.threshold
    if leuko:
        out["fp_on_wbc_or_platelet"] = fp_leuko
    return out


def show(title: str, s: dict) -> None:
    extra = f", fp on WBC/platelets {s['fp_on_wbc_or_platelet']}" \
        if "fp_on_wbc_or_platelet" in s else ""
    print(f"{title}: precision {s['precision']:.3f} recall {s['recall']:.3f} F1 {s['f1']:.3f} "
          f"(tp {s['tp']}, fp {s['fp']}, fn {s['fn']}; threshold {s['threshold']:.3f}; "
          f"{s['megapixels_per_s']:.2f} MP/s on the CPU{extra})", flush=True)


def nearly_complete() -> list[str]:
    """The Chula test images whose labels looked nearly complete by eye (labels drawn over
    the image; ``benchmarks/splits/chula-test-nearly-complete.csv``): of the 33 that
    ``bench_detect.label_completeness`` admits, most leave some red cells unlabelled."""
    import csv

    with open(REPO / "benchmarks" / "splits" / "chula-test-nearly-complete.csv",
              newline="") as fh:
        return [r["image"] for r in csv.DictReader(fh)]


def chula(a: argparse.Namespace, work: Path) -> None:
    fin = {"model_path": str(a.evaluate)} if a.evaluate else chula_train(a, work)
    chula_scores(fin, a.tta)


def chula_train(a: argparse.Namespace, work: Path) -> dict:
    # with partial labels every training image can teach (what is unlabelled far from the
    # labels is ignored); else only those whose labels look complete
    train_set = bd.load_set("chula", "train", dense=not a.chula_all_train)
    names = work / "chula-train-images.txt"
    names.write_text("\n".join(n for n, _, _ in train_set) + "\n")
    print(f"Chula: {len(train_set)} fully labelled training images", flush=True)
    fin = train("chula", ["--points", str(bd.CHULA / "points.csv"), "--images",
                          str(bd.CHULA / "Dataset"), "--image-list", str(names),
                          "--diameter-px", "45", "--downsample", str(a.chula_downsample),
                          "--width", str(a.width), "--depth", str(a.depth), "--crop-px", "64",
                          "--batch-size", str(a.batch_size), "--lr", str(a.lr),
                          "--epochs", str(a.chula_epochs), "--steps-per-epoch", str(a.steps),
                          "--match-radius-px", str(bd.CHULA_RADIUS),
                          *(["--partial-labels", "--ignore-beyond", str(a.chula_partial)]
                            if a.chula_partial else [])],
                work, a.max_minutes, a.threads)
    print(f"Chula training: {fin['wall_s'] / 60:.1f} min wall, {fin['epochs_run']} epochs, "
          f"best epoch {fin['best_epoch']} ({fin['reason']})", flush=True)
    return fin


def chula_scores(fin: dict, tta: bool = False) -> None:
    dense = bd.load_set("chula", "test", dense=True)
    show(f"Chula test, {len(dense)} fully labelled images, r {bd.CHULA_RADIUS:g}",
         evaluate(fin["model_path"], dense, bd.CHULA_RADIUS, leuko=True, tta=tta))
    show(f"Chula test, the same images without the {EDGE_MARGIN:g} px at their borders",
         evaluate(fin["model_path"], dense, bd.CHULA_RADIUS, leuko=True, margin=EDGE_MARGIN,
                  tta=tta))
    complete = set(nearly_complete())
    best = [item for item in dense if item[0] in complete]
    show(f"Chula test, the {len(best)} images whose labels looked nearly complete by eye, "
         f"without the {EDGE_MARGIN:g} px at their borders",
         evaluate(fin["model_path"], best, bd.CHULA_RADIUS, leuko=True, margin=EDGE_MARGIN,
                  tta=tta))
    every = bd.load_set("chula", "test")
    s = evaluate(fin["model_path"], every, bd.CHULA_RADIUS, tta=tta)
    print(f"Chula test, all {len(every)} images: recall {s['recall']:.3f} (exact), precision "
          f"{s['precision']:.3f} (a lower bound)", flush=True)


def crc(a: argparse.Namespace, work: Path) -> None:
    fin = {"model_path": str(a.evaluate)} if a.evaluate else crc_train(a, work)
    val = bd.load_set("crc", "validation")
    show(f"CRC validation, {len(val)} tiles, r {bd.CRC_RADIUS:g} (precision a lower bound)",
         evaluate(fin["model_path"], val, bd.CRC_RADIUS, tta=a.tta))


def crc_train(a: argparse.Namespace, work: Path) -> dict:
    names = work / "crc-train-tiles.txt"
    names.write_text("\n".join(bd.crc_split("train")) + "\n")
    partial = ["--no-partial-labels"] if a.crc_full_background else ["--partial-labels"]
    if a.crc_unstained_background:
        partial.append("--unstained-is-background")
    fin = train("crc-full" if a.crc_full_background else "crc", [
        "--points", str(bd.CRC / "points.csv"), "--images", str(bd.CRC / "tiles"),
        "--image-list", str(names), "--diameter-px", str(a.crc_diameter),
        "--crop-px", str(a.crc_crop),
        "--width", str(a.width), "--depth", str(a.depth), "--batch-size", str(a.batch_size),
        "--lr", str(a.lr), "--epochs", str(a.crc_epochs), "--stain-jitter", str(a.stain_jitter),
        "--steps-per-epoch", str(a.steps),
        "--match-radius-px", str(bd.CRC_RADIUS), *partial], work, a.max_minutes, a.threads)
    print(f"CRC training: {fin['wall_s'] / 60:.1f} min wall, {fin['epochs_run']} epochs, "
          f"best epoch {fin['best_epoch']} ({fin['reason']})", flush=True)
    return fin


def slide_speed(model: str, device: str, tta: bool) -> None:
    """The real SVS (H&E at 0.5 um/px, as CRC's 20x) detected tile by tile with ``model``
    through the app's image source, and the time for a 100,000 x 80,000 slide extrapolated
    from its rate: this one-level SVS has every tile run (glass costs as much as tissue), while
    on a pyramid slide the glass tiles are skipped, so a big slide costs its tissue's
    megapixels at that rate (said for all tissue and half; the SVS's own tissue share, by the
    classical detector's rule, is printed for scale)."""
    from cellviewer.core.detect.area import Area
    from cellviewer.core.detect.job import _thumbnail, _tissue_mask
    from cellviewer.core.sources import open_image
    from trainer.detect.infer import load_detector

    det = load_detector(model, device=device, tta=tta)
    with open_image(bd.SLIDE) as src:
        w, h = src.dimensions
        thumb, _ = _thumbnail(src, Area.whole(w, h))
        tissue = float(_tissue_mask(thumb, np.full(3, 255.0, np.float32)).mean())

        def read(x: int, y: int, rw: int, rh: int) -> np.ndarray:
            return src.read_region(0, x, y, rw, rh)

        det.detect_reader(w, h, read, tile=128)  # warm-up (a CUDA context, ORT's plans)
        t = time.perf_counter()
        found = det.detect_reader(w, h, read)
        secs = time.perf_counter() - t
    mp = w * h / 1e6
    rate = mp / secs
    big = 100_000 * 80_000 / 1e6
    print(f"SVS {w} x {h} ({mp:.1f} MP, tissue {tissue:.0%}), {det.device} on "
          f"{det.backend_note or det.device}, {'8 orientations, ' if tta else ''}"
          f"{torch_threads()} threads: {len(found):,} cells in {secs:.1f} s, "
          f"{rate:.2f} MP/s; a 100,000 x 80,000 slide: "
          f"{big / rate / 3600:.1f} h all tissue, {0.5 * big / rate / 3600:.1f} h at half "
          "tissue", flush=True)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=("chula", "crc"))
    p.add_argument("--evaluate", type=Path, metavar="MODEL",
                   help="score this detector model file instead of training one (with --only)")
    p.add_argument("--tta", action="store_true",
                   help="score with the 8 orientations averaged (test-time augmentation; the "
                        "threshold stays the one the trainer chose without it)")
    p.add_argument("--slide-speed", type=Path, metavar="MODEL",
                   help="time MODEL over the real SVS and extrapolate to a 100,000 x 80,000 "
                        "slide (with --device, --threads)")
    p.add_argument("--device", default="cpu", help="with --slide-speed: cpu, cuda, …")
    p.add_argument("--work", type=Path, default=Path("/tmp/bench_detect_trained"))
    p.add_argument("--chula-epochs", type=int, default=12)
    p.add_argument("--chula-downsample", type=int, default=5)
    p.add_argument("--chula-partial", type=float, metavar="DIAMETERS", default=0.0,
                   help="Chula: train with partial labels, ignoring what lies farther than "
                   "this many diameters from every label (its 'fully labelled' images still "
                   "leave some red cells unlabelled)")
    p.add_argument("--chula-all-train", action="store_true",
                   help="Chula: train on all its training images (with --chula-partial)")
    p.add_argument("--crc-epochs", type=int, default=8)
    p.add_argument("--width", type=int, default=12, help="the U-Net's first-level channels")
    p.add_argument("--depth", type=int, default=2, help="the U-Net's levels")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--crc-crop", type=int, default=96, help="CRC training crop (px)")
    p.add_argument("--crc-diameter", type=float, default=14.0)
    p.add_argument("--crc-full-background", action="store_true",
                   help="CRC: unlabelled pixels far from labels are background (not ignored)")
    p.add_argument("--crc-unstained-background", action="store_true",
                   help="CRC: far from labels, what is too pale to be a nucleus is background")
    p.add_argument("--stain-jitter", type=float, default=0.0, help="HED stain jitter strength")
    p.add_argument("--steps", type=int, default=50, help="steps per epoch")
    p.add_argument("--max-minutes", type=float, default=14.0)
    # one thread: on 2 cores shared with other work, torch's 2 OpenMP threads spin against
    # each other and a training step takes ~10x longer (0.25 s -> 2.5 s measured)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(a.threads)
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
          flush=True)
    if a.slide_speed is not None:
        slide_speed(str(a.slide_speed), a.device, a.tta)
        return
    if a.only in (None, "chula"):
        chula(a, a.work)
    if a.only in (None, "crc"):
        crc(a, a.work)


if __name__ == "__main__":
    main()
