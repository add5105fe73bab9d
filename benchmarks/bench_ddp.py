"""DDP on the CPU: ``torchrun --nproc-per-node 2`` (gloo) against one process, same seed and
global batch: training samples/s, and how far the two final models agree on the validation
cells (macro-F1, the share of cells given the same class).

    python benchmarks/bench_ddp.py [--per-class 400] [--epochs 3] [--no-dropout]

A generated patch set (three colour classes plus noise; tests' engine_testdata) and a small
CNN; each process uses one thread (torchrun's default). What it says about several GPUs: only
that the training is the same; scaling needs GPUs (on the CPU two processes share the same
memory bandwidth and cores with everyone else on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "trainer" / "engine"))


def _train(cmd: list[str], env: dict) -> list[dict]:
    from trainer.formats.protocol import parse_line

    done = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    events = [e for e in map(parse_line, done.stdout.splitlines()) if e is not None]
    if done.returncode != 0 or not events or events[-1]["event"] != "finished":
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return events


def _val_predictions(run: Path, patchset: Path) -> tuple[np.ndarray, np.ndarray]:
    from trainer.formats.patchset import load_patchset
    from trainer.predict import Predictor

    ps = load_patchset(patchset)
    val = np.load(run / "split.npz")["val_idx"]
    probs = Predictor.load(run / "last.cvmodel", device="cpu").predict(
        np.asarray(ps.patches)[val]).probs
    return probs.argmax(1), np.asarray(ps.labels)[val]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-class", type=int, default=400)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-dropout", action="store_true")
    args = p.parse_args()

    from engine_testdata import make_patchset

    from trainer.metrics import classification_metrics

    work = Path(tempfile.mkdtemp(prefix="bench-ddp-"))
    try:
        ps = make_patchset(work / "train.patches", n_per_class=args.per_class, seed=3)
        model_args = ["--model-arg", "channels=[16,16,32,32]"]
        if args.no_dropout:
            model_args += ["--model-arg", "input_dropout=0", "--model-arg", "hidden_dropout=0"]
        common = ["train", "--patchset", str(ps), "--model", "cnn", *model_args,
                  "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
                  "--threads", "1", "--device", "cpu", "--heartbeat", "30", "--json",
                  "--patience", "0"]
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
        torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
        if torchrun is None:
            raise SystemExit("torchrun is not installed")
        results = {}
        for name, cmd in (
                ("1 process", [sys.executable, "-m", "trainer", *common,
                               "--out", str(work / "one")]),
                ("2 processes (gloo)", [torchrun, "--standalone", "--nproc-per-node", "2",
                                        "-m", "trainer", *common, "--out", str(work / "two")])):
            events = _train(cmd, env)
            epochs = [e for e in events if e["event"] == "epoch"]
            # the first epoch includes warm-up; the rest is the steady rate
            rate = float(np.mean([e["samples_per_s"] for e in epochs[1:] or epochs]))
            out = work / ("one" if name.startswith("1") else "two")
            pred, y = _val_predictions(out, ps)
            k = int(y.max()) + 1
            results[name] = {"samples_per_s": rate, "pred": pred, "y": y,
                             "macro_f1": classification_metrics(y, pred, k).macro_f1,
                             "epoch_s": [e["epoch_s"] for e in epochs]}
        one, two = results["1 process"], results["2 processes (gloo)"]
        same = float((one["pred"] == two["pred"]).mean())
        print(f"patch set: {3 * args.per_class} cells, {len(one['y'])} validation; "
              f"batch {args.batch_size} (global), {args.epochs} epochs, dropout "
              f"{'off' if args.no_dropout else 'on (the CNN default)'}; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for name, r in results.items():
            print(f"{name:>20}: {r['samples_per_s']:8.0f} samples/s  "
                  f"macro-F1 {r['macro_f1']:.4f}  epochs {r['epoch_s']} s")
        print(f"2 processes / 1 process: {two['samples_per_s'] / one['samples_per_s']:.2f}x "
              f"samples/s; |delta macro-F1| {abs(two['macro_f1'] - one['macro_f1']):.4f}; "
              f"same class for {100 * same:.1f} % of the validation cells")
        print(json.dumps({"ratio": two["samples_per_s"] / one["samples_per_s"],
                          "delta_macro_f1": abs(two["macro_f1"] - one["macro_f1"]),
                          "same_class": same}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
