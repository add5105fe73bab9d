"""Which training options help on the real colorectal (CRC) data: chosen on an image-disjoint
part of the training tiles, reported on the validation tiles.

1. The 70 training tiles are split by tile into ``fit`` (56) and ``select`` (14) as listed in
   ``benchmarks/splits/crc-selection-split.csv`` (a seeded draw whose class shares in
   ``select`` are closest to 20%; made before any model was trained); patch sets are built with
   ``python -m trainer build-patchset`` for fit, select, all 70 training tiles and the 10
   validation tiles.
2. **Selection**: ``python -m trainer train`` of the baseline (the study's recipe) and of each
   option alone, trained on ``fit``, validated on ``select``, for every seed; the option is
   kept when its mean macro-F1 on ``select`` beats the baseline's.
3. **Final figures**: the baseline and the kept options together, trained on all 70 training
   tiles, evaluated on the 10 validation tiles: accuracy, macro-F1, weighted F1, per-class F1,
   mean and sd over the seeds.

Every run trains a fixed number of epochs (``--patience 0``) and its *last* model is the one
measured, so the validation tiles never pick an epoch. The numbers (no data) go to
``--csv`` (default ``benchmarks/results/recipe_options.csv``), one row per run and one summary
row per (phase, options). The CRC data is research-use only: it is read where it lies.

    python benchmarks/bench_recipe_options.py --device cuda --epochs 40 --seeds 1,2,3
    python benchmarks/bench_recipe_options.py --device cpu --threads 2 --epochs 6 --seeds 1 \\
        --flag-limit 1000 --options baseline,smooth,inverse,mixup,jitter
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package

from trainer_run import run_trainer  # noqa: E402

DEFAULT_CRC = REPO.parent / "shared" / "data" / "crc"
SPLIT_FILE = REPO / "benchmarks" / "splits" / "crc-selection-split.csv"
DEFAULT_CSV = REPO / "benchmarks" / "results" / "recipe_options.csv"

#: each option alone, as ``python -m trainer train`` flags
OPTIONS: dict[str, list[str]] = {
    "baseline": [],
    "smooth": ["--label-smoothing", "0.1"],
    "inverse": ["--class-balanced-loss", "inverse"],
    "effective": ["--class-balanced-loss", "effective", "--class-balance-beta", "0.999"],
    "mixup": ["--mixup", "0.2"],
    "cutmix": ["--cutmix", "1.0"],
    "jitter": ["--color-jitter", "0.05"],
    "jitter_strong": ["--color-jitter", "0.15"],
    "constant": ["--schedule", "constant"],
}
CLASS_BALANCE = ("inverse", "effective")  # one class weighting at most in a combination
ROLES = ("fit", "select", "train", "validation")


def trainer_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainer", *args]


def build_patchsets(crc: Path, work: Path) -> dict[str, Path]:
    """The four patch sets; the points CSV is rewritten with the role as its split column."""
    import pandas as pd

    points = pd.read_csv(crc / "points.csv")
    roles = pd.read_csv(SPLIT_FILE)
    merged = points.merge(roles, on="image", how="left")
    if merged["role"].isna().any():
        missing = sorted(merged.loc[merged["role"].isna(), "image"].unique())[:5]
        raise SystemExit(f"{SPLIT_FILE}: no role for tiles {missing}")
    work.mkdir(parents=True, exist_ok=True)
    out = {}
    for role in ROLES:
        dest = work / f"{role}.patches"
        out[role] = dest
        if (dest / "meta.json").exists():
            continue
        rows = merged if role != "train" else merged[merged["split"] == "train"]
        rows = rows.assign(split=role if role == "train" else rows["role"])
        csv_path = work / f"points_{role}.csv"
        rows[["split", "image", "x", "y", "class"]].to_csv(csv_path, index=False)
        subprocess.run(trainer_cmd("build-patchset", str(csv_path), str(crc / "tiles"),
                                   str(dest), "--split", role), check=True, cwd=REPO,
                       stdout=subprocess.DEVNULL)
    return out


def evaluation(model: Path, patchset: Path, out: Path, device: str) -> dict:
    """Accuracy, macro-F1, weighted F1 and per-class F1 of ``model`` on ``patchset``."""
    subprocess.run(trainer_cmd("evaluate", "--model", str(model), "--patchset", str(patchset),
                               "--device", device, "--out", str(out), "--prefix", "measured"),
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    ev = json.loads((out / "measured.json").read_text())
    support = np.array([c["support"] for c in ev["per_class"]], dtype=float)
    f1 = np.array([c["f1"] for c in ev["per_class"]], dtype=float)
    return {"accuracy": ev["accuracy"], "macro_f1": ev["macro_f1"],
            "weighted_f1": float((support * f1).sum() / support.sum()),
            **{f"f1_{c['class']}": c["f1"] for c in ev["per_class"]}}


def train_run(name: str, flags: list[str], seed: int, train: Path, val: Path, run: Path,
              args) -> dict:
    cmd = trainer_cmd("train", "--patchset", str(train), "--val-patchset", str(val),
                      "--model", args.model, "--device", args.device, "--out", str(run),
                      "--epochs", str(args.epochs), "--patience", "0", "--seed", str(seed),
                      *flags)
    if args.flag_limit:
        cmd += ["--flag-limit", str(args.flag_limit)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.warmup_epochs is not None and "--warmup-epochs" not in flags:
        cmd += ["--warmup-epochs", str(args.warmup_epochs)]
    last = run / "last.cvmodel"
    done = run / "measured.json"
    t0 = time.monotonic()
    if not done.exists():
        print("python " + " ".join(cmd[1:]), flush=True)
        with open(run.parent / f"{run.name}.stderr.log", "w") as err:
            result = run_trainer(cmd, REPO, args.budget, stderr=err)
        if not last.exists():
            raise SystemExit(f"{name} seed {seed}: no model came out (see "
                             f"{run.parent / (run.name + '.stderr.log')})")
        (run / "wall_s.txt").write_text(f"{result['wall_s']:.1f}\n")
    row = evaluation(last, val, run, args.device)
    wall = run / "wall_s.txt"
    row["train_wall_s"] = float(wall.read_text()) if wall.exists() else time.monotonic() - t0
    return row


def summarise(phase: str, name: str, rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k not in ("phase", "options", "seed", "flags")]
    out: dict = {"phase": phase, "options": name, "seed": "mean", "flags": rows[0]["flags"]}
    sd: dict = {"phase": phase, "options": name, "seed": "sd", "flags": rows[0]["flags"]}
    for k in keys:
        v = np.array([r[k] for r in rows], dtype=float)
        out[k] = float(v.mean())
        sd[k] = float(v.std(ddof=1)) if len(v) > 1 else ""  # one seed: no spread
    return {"mean": out, "sd": sd}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--crc", type=Path, default=DEFAULT_CRC)
    p.add_argument("--work", type=Path, default=Path("/tmp/cellviewer-recipe-options"))
    p.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    p.add_argument("--model", default="custom_vit")
    p.add_argument("--device", default="auto")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--warmup-epochs", type=int, default=None,
                   help="for every run (default: the model's)")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--final-seeds", default=None, help="default: --seeds")
    p.add_argument("--options", default=",".join(OPTIONS),
                   help=f"names among {', '.join(OPTIONS)} (baseline always runs)")
    p.add_argument("--final", default="auto",
                   help="options of the final candidate, '+'-joined, or 'auto': those that "
                        "beat the baseline's macro-F1 on select")
    p.add_argument("--skip-selection", action="store_true")
    p.add_argument("--flag-limit", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--budget", type=float, default=1e9, help="wall seconds per run")
    args = p.parse_args(argv)
    if not (args.crc / "points.csv").exists():
        print(f"no CRC data at {args.crc} (points.csv and tiles/ expected)", file=sys.stderr)
        return 2
    names = ["baseline"] + [n for n in args.options.split(",") if n and n != "baseline"]
    unknown = [n for n in names if n not in OPTIONS]
    if unknown:
        print(f"unknown option(s) {unknown}; known: {', '.join(OPTIONS)}", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    final_seeds = [int(s) for s in (args.final_seeds or args.seeds).split(",")]
    t0 = time.monotonic()
    sets = build_patchsets(args.crc, args.work)
    print(f"patch sets ready in {time.monotonic() - t0:.0f} s", flush=True)
    rows: list[dict] = []
    summary: list[dict] = []

    def write() -> None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        table = rows + [r for s in summary for r in (s["mean"], s["sd"])]
        fields: list[str] = []
        for r in table:
            fields += [k for k in r if k not in fields]
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(table)

    def run_phase(phase: str, name: str, flags: list[str], train: Path, val: Path,
                  phase_seeds: list[int]) -> dict:
        got = []
        for seed in phase_seeds:
            run = args.work / f"{phase}_{name}_s{seed}"
            r = train_run(name, flags, seed, train, val, run, args)
            row = {"phase": phase, "options": name, "seed": seed, "flags": " ".join(flags), **r}
            rows.append(row)
            got.append(row)
            print(f"{phase} {name} seed {seed}: acc {r['accuracy']:.4f}, macro-F1 "
                  f"{r['macro_f1']:.4f}, weighted F1 {r['weighted_f1']:.4f} "
                  f"({r['train_wall_s']:.0f} s)", flush=True)
            write()
        s = summarise(phase, name, got)
        summary.append(s)
        write()
        return s

    kept: list[str] = []
    if not args.skip_selection:
        sel = {n: run_phase("selection", n, OPTIONS[n], sets["fit"], sets["select"], seeds)
               for n in names}
        base = sel["baseline"]["mean"]["macro_f1"]
        gains = {n: s["mean"]["macro_f1"] - base for n, s in sel.items() if n != "baseline"}
        print("selection: macro-F1 gain over the baseline on select: "
              + ", ".join(f"{n} {g:+.4f}" for n, g in gains.items()), flush=True)
        kept = [n for n, g in sorted(gains.items(), key=lambda kv: -kv[1]) if g > 0]
    if args.final != "auto":
        kept = [n for n in args.final.split("+") if n]
    balance = [n for n in kept if n in CLASS_BALANCE]
    kept = [n for n in kept if n not in CLASS_BALANCE] + balance[:1]
    jitters = [n for n in kept if n.startswith("jitter")]
    kept = [n for n in kept if not n.startswith("jitter")] + jitters[:1]
    print(f"final candidate: {'+'.join(kept) or 'baseline'}", flush=True)
    run_phase("final", "baseline", [], sets["train"], sets["validation"], final_seeds)
    if kept:
        flags = [f for n in kept for f in OPTIONS[n]]
        run_phase("final", "+".join(kept), flags, sets["train"], sets["validation"], final_seeds)
    print(f"done in {time.monotonic() - t0:.0f} s; {args.csv}", flush=True)
    def pm(m: dict, d: dict, key: str) -> str:
        return f"{m[key]:.4f}" + (f"±{d[key]:.4f}" if d[key] != "" else "")

    for s in summary:
        m, d = s["mean"], s["sd"]
        print(f"{m['phase']:9s} {m['options']:28s} acc {pm(m, d, 'accuracy')}  macro-F1 "
              f"{pm(m, d, 'macro_f1')}  weighted F1 {pm(m, d, 'weighted_f1')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
