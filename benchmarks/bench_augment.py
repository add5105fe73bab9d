"""Benchmark: the cost of the study's augmentation + whitening per batch, against a plain gather.

200,000 synthetic uint8 patches are held once on the device (as training does). Measured, at
the given batch size, in batches/s and samples/s:

(a) plain: gather un-augmented rows -> (B, 3, 40, 40) float in [0, 1];
(b) augment: gather rows of the 9.6x augmented index -> colour op + orientation -> whitened.

Both go through ``trainer.data.loader.PatchBatches`` (the path the trainer uses). On CUDA each
is also run compiled (``torch.compile``), replayed from a CUDA graph, and both; the compiled
and graphed outputs are checked against eager ones first. The ratio (a)/(b) is the cost of
augmentation.

    python benchmarks/bench_augment.py                      # CPU, a few iterations
    python benchmarks/bench_augment.py --device cuda        # the GPU run (goal: >= 1e6 samples/s)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout too

from trainer.data.loader import PatchBatches, gather_batch
from trainer.data.whiten import mean_image


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batches(batches: PatchBatches, iters: int, warmup: int, rounds: int) -> float:
    """Seconds per batch: the best of ``rounds`` rounds of ``iters`` full batches each (after
    ``warmup`` untimed ones). The best round is the least disturbed by other processes."""
    order = batches.order(0)
    bsz = batches.batch_size
    n_full = batches.n_samples // bsz
    sels = [order[(k % n_full) * bsz:(k % n_full + 1) * bsz] for k in range(warmup + iters)]
    for sel in sels[:warmup]:
        batches.batch(sel)
    best = float("inf")
    for _ in range(rounds):
        _sync(batches.device)
        t0 = time.perf_counter()
        for sel in sels[warmup:]:
            x, _ = batches.batch(sel)
        _sync(batches.device)
        best = min(best, (time.perf_counter() - t0) / iters)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=200_000, help="synthetic patches")
    ap.add_argument("--batch", type=_ints, default=[512], help="batch size(s), e.g. 512,4096")
    ap.add_argument("--iters", type=int, default=None,
                    help="timed batches per round (cpu 20, cuda 1000)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds; the best is reported")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    ap.add_argument("--variants", default=None,
                    help="comma-separated, of: eager, compile, cuda graph, compile + cuda graph "
                         "(default: all on CUDA, eager on CPU)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    iters = args.iters or (1000 if cuda else 20)
    warmup = 50 if cuda else 3

    t0 = time.perf_counter()
    patches = np.random.default_rng(0).integers(0, 256, (args.n, 40, 40, 3), dtype=np.uint8)
    labels = np.zeros(args.n, dtype=np.int64)
    mean = mean_image(patches[:20_000])
    print(f"{args.n} synthetic patches ({patches.nbytes / 1e9:.2f} GB) in "
          f"{time.perf_counter() - t0:.1f} s; torch {torch.__version__}, "
          f"{torch.cuda.get_device_name(device) if cuda else f'{torch.get_num_threads()} threads'}")

    known = {"eager": (False, False), "compile": (True, False), "cuda graph": (False, True),
             "compile + cuda graph": (True, True)}
    if args.variants:
        names = [v.strip() for v in args.variants.split(",")]
    else:
        names = list(known) if cuda else ["eager"]
        if args.no_compile:
            names = [v for v in names if not known[v][0]]
    variants = [(name, *known[name]) for name in names]

    results = []
    for bsz in args.batch:
        for name, comp, graph in variants:
            row = {"variant": name, "batch": bsz}
            for key, augment, m in (("plain", False, None), ("augment", True, mean)):
                row[key] = None
                try:
                    b = PatchBatches(patches, labels, m, device=device, augment=augment,
                                     seed=42, batch_size=bsz, shuffle=True, compile=comp,
                                     cuda_graph=graph, reuse_output=True)
                    if comp or graph:  # the fast variants must give the eager result
                        sel = b.order(1)[:bsz]
                        got = b.batch(sel)[0].clone()
                        want = gather_batch(b.patches, b.labels, b.plan, sel, b.orient_table,
                                            b.colour_table, b.mean, b.augment)[0]
                        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
                    row[key] = time_batches(b, iters, warmup, args.rounds)
                    del b
                except Exception as exc:  # report it and go on with the other variants
                    print(f"{name} / {key} / batch {bsz}: failed: {type(exc).__name__}: {exc}")
                if cuda:
                    torch.cuda.empty_cache()
            results.append(row)

    print()
    print(f"device {device}, best of {args.rounds} rounds of {iters} batches, "
          f"total {time.perf_counter() - t0:.0f} s")
    print(f"{'variant':<22} {'path':<28} {'batch':>6} {'batches/s':>10} {'samples/s':>12}")
    for row in results:
        for key, label in (("plain", "(a) plain gather -> float"),
                           ("augment", "(b) augment + whiten")):
            s = row[key]
            rate = ("failed" if s is None
                    else f"{1 / s:>10,.0f} {row['batch'] / s:>12,.0f}")
            print(f"{row['variant']:<22} {label:<28} {row['batch']:>6} {rate:>10}")
        if row["plain"] and row["augment"]:
            print(f"{row['variant']:<22} {'ratio (a)/(b)':<28} {row['batch']:>6} "
                  f"{row['augment'] / row['plain']:>10.2f}")


if __name__ == "__main__":
    main()
