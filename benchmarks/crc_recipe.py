"""The study's recipe on the real colorectal (CRC) data, end to end, with the trainer's own CLI.

1. ``python -m trainer build-patchset`` for the train and validation splits of
   ``../shared/data/crc`` (source crops kept, for the pre-resize blur test);
2. ``python -m trainer train`` of each model (the study's defaults from the registry table: 9.6x
   augmentation, one epoch = the whole augmented set, early stopping with patience 10),
   validated on the validation split; its JSON progress lines are read with the protocol's
   parser, and a wall-clock budget per model is enforced by the protocol's clean ``stop``;
3. ``python -m trainer evaluate`` and ``python -m trainer robustness`` of the best model on the
   validation split.

Writes ``crc_recipe.md`` (validation metrics, per-class table, normalised confusion matrix, the
blur table, the exact commands) and ``crc_recipe.json`` to ``--out``. The CRC data is
research-use only: it is read where it lies, never copied into the repository.

    python benchmarks/crc_recipe.py --device cuda --models custom_vit,cnn --out /tmp/crc-out
    python benchmarks/crc_recipe.py --device cpu --models cnn --epochs 5 --threads 2
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package

from trainer_run import run_trainer  # noqa: E402

DEFAULT_CRC = REPO.parent / "shared" / "data" / "crc"


def trainer_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainer", *args]


def show(cmd: list[str]) -> str:
    """The command as a user would type it (``python -m trainer ...``)."""
    return "python " + " ".join(shlex.quote(a) for a in cmd[1:])


def build_patchsets(crc: Path, work: Path, log: list[str]) -> dict[str, Path]:
    out = {}
    for split, name in (("train", "train.patches"), ("validation", "val.patches")):
        dest = work / name
        out[split] = dest
        if (dest / "meta.json").exists():
            continue
        cmd = trainer_cmd("build-patchset", str(crc / "points.csv"), str(crc / "tiles"),
                          str(dest), "--split", split, "--keep-source-crops")
        log.append(show(cmd))
        subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return out


def train(model: str, sets: dict[str, Path], run: Path, args, log: list[str]) -> dict:
    """One ``trainer train`` run; returns its parsed events (stop requested past the budget)."""
    cmd = trainer_cmd("train", "--patchset", str(sets["train"]), "--val-patchset",
                      str(sets["validation"]), "--model", model, "--device", args.device,
                      "--out", str(run))
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    if args.flag_limit:
        cmd += ["--flag-limit", str(args.flag_limit)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    log.append(show(cmd))

    def show_epoch(event: dict, _t: float) -> None:
        if event["event"] == "epoch":
            print(f"  {model} epoch {event['epoch']}/{event['epochs']}: val acc "
                  f"{event['val_acc']:.4f}, macro-F1 {event['macro_f1']:.4f}, "
                  f"{event['samples_per_s']:,.0f} samples/s", flush=True)

    with open(run.parent / f"{run.name}.stderr.log", "w") as err:
        return run_trainer(cmd, REPO, args.budget, stderr=err, on_event=show_epoch)


def evaluate(model_path: Path, val: Path, args, log: list[str]) -> dict:
    out = model_path.parent
    for command in ("evaluate", "robustness"):
        cmd = trainer_cmd(command, "--model", str(model_path), "--patchset", str(val),
                          "--device", args.device, "--out", str(out))
        log.append(show(cmd))
        subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    result = {"evaluation": json.loads((out / "evaluation.json").read_text())}
    robust_md = out / "robustness.md"
    result["robustness_md"] = robust_md.read_text() if robust_md.exists() else ""
    return result


def report_model(model: str, run: dict, ev: dict | None) -> list[str]:
    events = run["events"]
    started = next((e for e in events if e["event"] == "started"), {})
    epochs = [e for e in events if e["event"] == "epoch"]
    finished = next((e for e in events if e["event"] == "finished"), None)
    errors = [e for e in events if e["event"] == "error"]
    lines = [f"## {model}", ""]
    if errors:
        lines.append(f"error: {errors[0].get('kind')}: {errors[0].get('message')}")
    if started:
        lines.append(f"device {started.get('device_name')}, fast path "
                     f"{started.get('fast_path')}, amp {started.get('amp')}, "
                     f"{started.get('params'):,} parameters, {started.get('n_train'):,} train "
                     f"cells ({started.get('n_train_augmented'):,} augmented per epoch), "
                     f"{started.get('n_val'):,} validation cells, batch "
                     f"{started.get('batch_size')}, up to {started.get('epochs')} epochs")
    if epochs:
        speeds = sorted(e["samples_per_s"] for e in epochs)
        lines.append(f"{len(epochs)} epochs in {run['wall_s']:.0f} s wall (process start, "
                     f"compilation, validation and model files included); training "
                     f"samples/s per epoch: median {speeds[len(speeds) // 2]:,.0f}")
    if finished and finished.get("best_epoch"):
        m = finished.get("metrics", {})
        lines.append(f"stopped: {finished.get('reason')}; best epoch "
                     f"{finished.get('best_epoch')}: val acc {m.get('val_acc', 0):.4f}, "
                     f"macro-F1 {m.get('macro_f1', 0):.4f}")
    elif finished:
        lines.append(f"stopped: {finished.get('reason')} before the first epoch ended "
                     "(the evaluation below is of the last model)")
    if ev:
        e = ev["evaluation"]
        lines += ["", "Evaluation of the best model on the validation split:", "",
                  f"accuracy {e['accuracy']:.4f}, macro precision {e['macro_precision']:.4f}, "
                  f"macro recall {e['macro_recall']:.4f}, macro-F1 {e['macro_f1']:.4f}", "",
                  "| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
        for c in e["per_class"]:
            lines.append(f"| {c['class']} | {c['precision']:.3f} | {c['recall']:.3f} | "
                         f"{c['f1']:.3f} | {c['support']} |")
        names = [c["class"] for c in e["per_class"]]
        lines += ["", "Normalised confusion matrix (rows: true, columns: predicted):", "",
                  "| true \\ predicted | " + " | ".join(names) + " |",
                  "|---|" + "---:|" * len(names)]
        for name, row in zip(names, e["confusion_normalized"], strict=True):
            lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
        lines += ["", ev["robustness_md"].strip()]
    if epochs:
        lines += ["", "| epoch | train loss | train acc | val acc | macro-F1 | samples/s |",
                  "|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {e['epoch']} | {e['train_loss']:.4f} | {e['train_acc']:.4f} | "
                  f"{e['val_acc']:.4f} | {e['macro_f1']:.4f} | {e['samples_per_s']:,.0f} |"
                  for e in epochs]
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--crc", type=Path, default=DEFAULT_CRC, help="the CRC data folder")
    p.add_argument("--work", type=Path, default=Path("/tmp/cellviewer-crc"),
                   help="patch sets and run folders")
    p.add_argument("--out", type=Path, default=None, help="folder for the report")
    p.add_argument("--models", default="custom_vit,cnn")
    p.add_argument("--device", default="auto")
    p.add_argument("--epochs", type=int, default=None, help="default: each model's")
    p.add_argument("--flag-limit", type=int, default=None, help="FlagLimit (default: all)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--budget", type=float, default=1e9,
                   help="wall seconds per model before a clean stop is requested")
    args = p.parse_args(argv)
    if not (args.crc / "points.csv").exists():
        print(f"no CRC data at {args.crc} (points.csv and tiles/ expected)", file=sys.stderr)
        return 2
    out = args.out or args.work
    out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    t0 = time.monotonic()
    sets = build_patchsets(args.crc, args.work, log)
    print(f"patch sets ready in {time.monotonic() - t0:.1f} s", flush=True)
    lines = ["# The study's recipe on CRC", ""]
    summary: dict = {}
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        run_dir = args.work / (f"run_{model}" + (f"_fl{args.flag_limit}" if args.flag_limit
                                                  else ""))
        run = train(model, sets, run_dir, args, log)
        finished = next((e for e in run["events"] if e["event"] == "finished"), None)
        ev = None
        if finished:
            ev = evaluate(Path(finished["model_path"]), sets["validation"], args, log)
        summary[model] = {"run": run, "run_dir": str(run_dir),
                          "evaluation": ev and ev["evaluation"]}
        lines += report_model(model, run, ev)
        (out / "crc_recipe.md").write_text("\n".join(lines + ["## Commands", ""]
                                                     + [f"    {c}" for c in log]) + "\n")
        (out / "crc_recipe.json").write_text(json.dumps(summary, indent=1, default=str))
    print("\n".join(lines))
    failed = [m for m, r in summary.items() if r["evaluation"] is None]
    for model in failed:
        run_dir = Path(summary[model]["run_dir"])
        log_path = run_dir.parent / f"{run_dir.name}.stderr.log"
        tail = log_path.read_text()[-2000:] if log_path.exists() else ""
        print(f"no model came out of {model}; the end of {log_path}:\n{tail}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
