"""Batch-1 latency, the study's inference-cost protocol (mean over 400 runs at batch size 1
after warm-up), for the bare model and for the app's prediction API.

1. ``inference_cost`` (``trainer.engine.bench``): the bare forward of the model, eager under the
   run's autocast, and on CUDA replayed as a CUDA graph in float32, under autocast, and of the
   ``torch.compile``d model in float32;
2. ``Predictor.predict`` of one (40, 40, 3) uint8 patch, NumPy in, probabilities out (host
   copies, whitening, forward, softmax and the synchronisation included), for each of the
   predictor's single-patch paths: eager, CUDA graph (the default), compiled model in a CUDA
   graph; with the largest difference from the batch path's probabilities.

    python benchmarks/bench_latency.py --device cuda --out /tmp/lat
    python benchmarks/bench_latency.py --device cpu --threads 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package


def make_model_file(folder: Path, arch: str, num_classes: int) -> Path:
    import torch

    from trainer.engine.modelfile import save_model_file
    from trainer.models import create_model

    torch.manual_seed(0)
    model = create_model(arch, num_classes)
    path = folder / f"{arch}.cvmodel"
    save_model_file(path, state_dict=model.state_dict(), mean_image=torch.full((3, 40, 40), 0.5),
                    meta={"arch": arch, "classes": [f"class {i}" for i in range(num_classes)],
                          "fov_px": 40})
    return path


def predictor_latency(path: Path, device: str, runs: int, warmup: int, **kw) -> dict:
    from trainer.predict import Predictor

    rng = np.random.default_rng(0)
    patches = rng.integers(0, 256, size=(64, 40, 40, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    p = Predictor.load(path, device, **kw)
    reference = p.predict(patches).probs  # the batch path
    first = time.perf_counter()
    single = np.concatenate([p.predict(patches[i]).probs for i in range(len(patches))])
    setup_s = time.perf_counter() - first
    for i in range(warmup):
        p.predict(patches[i % 64])
    times = []
    for i in range(runs):
        t = time.perf_counter()
        p.predict(patches[i % 64])
        times.append(time.perf_counter() - t)
    path_used = ("eager" if p._single is None else
                 "compiled CUDA graph" if p.compile_single else "CUDA graph")
    return {"path": path_used, "mean_ms": float(np.mean(times) * 1e3),
            "median_ms": float(np.median(times) * 1e3),
            "p90_ms": float(np.percentile(times, 90) * 1e3),
            "max_abs_diff_vs_batch": float(np.abs(single - reference).max()),
            "same_argmax_as_batch": float((single.argmax(1) == reference.argmax(1)).mean()),
            "first_use_s": setup_s, "load_s": first - t0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--models", default="custom_vit,cnn")
    p.add_argument("--classes", type=int, default=16)
    p.add_argument("--runs", type=int, default=400)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-compile", action="store_true", help="skip the compiled variants")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    import torch

    from trainer.engine.bench import inference_cost
    from trainer.engine.device import configure_backends, device_name, select_device
    from trainer.models import create_model

    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    configure_backends(device)
    cuda = device.type == "cuda"
    results: dict = {"device": device_name(device), "torch": torch.__version__, "models": {}}
    lines = [f"# Batch-1 latency on {results['device']} (torch {torch.__version__})", "",
             "| model | what | mean ms | median ms | p90 ms | max |Δp| vs batch | first use s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for arch in [m.strip() for m in args.models.split(",") if m.strip()]:
            torch.manual_seed(0)
            r: dict = {"inference_cost": inference_cost(
                create_model(arch, args.classes), device, runs=args.runs, warmup=args.warmup,
                compile_graph=cuda and not args.no_compile, min_seconds=1.0)}
            ic = r["inference_cost"]
            for key, label in (("b1_eager_ms", "bare forward, eager"),
                               ("b1_graph_ms", "bare forward, CUDA graph fp32"),
                               ("b1_graph_amp_ms", "bare forward, CUDA graph bf16 autocast"),
                               ("b1_compile_graph_ms", "bare forward, compiled, CUDA graph")):
                if key in ic:
                    lines.append(f"| {arch} | {label} | {ic[key]:.3f} | | | | |")
                elif key + "_error" in ic:
                    lines.append(f"| {arch} | {label} | failed: {ic[key + '_error'][:60]} |"
                                 " | | | |")
            path = make_model_file(Path(tmp), arch, args.classes)
            variants = [("eager", {"use_graph": False})]
            if cuda:
                variants.append(("graph", {}))
                if not args.no_compile:
                    variants.append(("compiled graph", {"compile_single": True}))
            for name, kw in variants:
                try:
                    v = predictor_latency(path, args.device, args.runs, args.warmup, **kw)
                except Exception as exc:  # report, keep the other figures
                    v = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
                r[f"predictor {name}"] = v
                if "error" in v:
                    lines.append(f"| {arch} | Predictor, {name} | failed: {v['error'][:60]} |"
                                 " | | | |")
                else:
                    lines.append(f"| {arch} | Predictor.predict(1 patch), {v['path']} | "
                                 f"{v['mean_ms']:.3f} | {v['median_ms']:.3f} | "
                                 f"{v['p90_ms']:.3f} | {v['max_abs_diff_vs_batch']:.1e} | "
                                 f"{v['first_use_s']:.1f} |")
            results["models"][arch] = r
            print("\n".join(lines[-(len(variants) + 4):]), flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_latency.md").write_text(text)
        (args.out / "bench_latency.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
