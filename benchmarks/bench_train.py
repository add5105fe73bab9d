"""Training and inference speed of the trainer's real code paths (synthetic data).

For each model (CustomViT and the CNN by default) and batch size:

- the full training step (gather + the study's augmentation + whitening + forward + loss +
  backward + AdamW) for each step variant of ``trainer.engine.step`` (eager; on CUDA also a
  CUDA graph of the whole step, and the step compiled by ``torch.compile`` inside one graph);
- a bare forward + backward of the same model on a fixed batch (no data path, no optimiser),
  and the ratio full step / bare forward+backward (close to 1: the model sets the pace);
- the study's inference cost: mean batch-1 forward time over 400 runs after warm-up (eager;
  on CUDA also replayed as a CUDA graph), parameters, size, and large-batch throughput.

Sections run in priority order within a time budget (``--budget`` seconds); each is guarded,
so one failure is recorded and the rest still run; results are rewritten after every section
as JSON and a Markdown table (``--out`` folder), so a run cut short keeps what it measured.

    python benchmarks/bench_train.py --device cpu                 # this machine's figures
    python benchmarks/bench_train.py --device cuda --budget 400   # what gpu_suite.sh runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from trainer.engine.bench import (
    bench_fwd_bwd,
    bench_train_step,
    inference_cost,
)


def plan_sections(device: torch.device, models: list[str], batches: list[int],
                  quick: bool) -> list[tuple[str, float, dict]]:
    """(kind, estimated seconds, kwargs), most important first: the first model (CustomViT)
    at the main batch size in every variant, then at the large batch with the fast path, then
    the second model, then the rest."""
    cuda = device.type == "cuda"
    main_b, big = batches[0], batches[1:]
    compile_cost, plain_cost = (45.0, 8.0) if cuda else (0.0, 15.0)

    def train(m: str, b: int, v: str) -> tuple[str, float, dict]:
        return ("train", compile_cost if "compile" in v else plain_cost,
                {"model": m, "batch": b, "variant": v})

    def fwd_bwd(m: str, b: int, v: str) -> tuple[str, float, dict]:
        return ("fwd_bwd", compile_cost if "compile" in v else plain_cost,
                {"model": m, "batch": b, "variant": v})

    def inference(m: str, **kw) -> tuple[str, float, dict]:
        return ("inference", 12.0 + (30.0 if kw else 0.0), {"model": m, **kw})

    if not cuda:
        out = []
        for m in models:
            for b in batches:
                out += [train(m, b, "eager"), fwd_bwd(m, b, "eager")]
            out.append(inference(m))
        return out
    fast, graph = "compile+cuda-graph", "cuda-graph"
    first, rest = models[0], models[1:]
    out = [train(first, main_b, "eager"), train(first, main_b, graph),
           train(first, main_b, fast), fwd_bwd(first, main_b, "eager"),
           fwd_bwd(first, main_b, fast), inference(first)]
    out += [train(first, b, fast) for b in big]
    for m in rest:
        out += [train(m, main_b, "eager"), train(m, main_b, graph), train(m, main_b, fast),
                fwd_bwd(m, main_b, "eager"), fwd_bwd(m, main_b, graph), inference(m)]
    out += [fwd_bwd(first, b, fast) for b in big]
    for m in rest:
        out += [train(m, b, fast) for b in big] + [fwd_bwd(m, main_b, fast)]
        out += [fwd_bwd(m, b, fast) for b in big]
    out += [train(first, b, graph) for b in big] + [fwd_bwd(first, main_b, graph)]
    if not quick:
        out += [train(first, main_b, "compile(model)+cuda-graph"),
                inference(first, compile_graph=True)]
    return out


def run_section(kind: str, kw: dict, device: torch.device, args) -> dict:
    seconds = args.seconds
    if kind == "train":
        return bench_train_step(kw["model"], device, kw["batch"], kw["variant"],
                                iters=args.iters, min_seconds=seconds)
    if kind == "fwd_bwd":
        return bench_fwd_bwd(kw["model"], device, kw["batch"], kw["variant"],
                             iters=args.iters, min_seconds=seconds)
    from trainer.models import create_model

    torch.manual_seed(0)
    model = create_model(kw["model"], 16)
    large = 4096 if device.type == "cuda" else 256
    r = inference_cost(model, device, runs=args.runs, large_batch=large,
                       compile_graph=kw.get("compile_graph", False), min_seconds=seconds)
    r.update({"what": "inference", "model": kw["model"]})
    return r


def ratios(results: list[dict]) -> list[dict]:
    """Full training step / bare forward+backward, per model, batch and variant."""
    out = []
    fb = {(r["model"], r["batch_size"], r["variant"]): r for r in results
          if r.get("what") == "fwd_bwd" and "samples_per_s" in r}
    for r in results:
        if r.get("what") != "train" or "samples_per_s" not in r:
            continue
        key = (r["model"], r["batch_size"], r["variant"])
        if key in fb:
            out.append({"model": key[0], "batch_size": key[1], "variant": key[2],
                        "step_ms": r["step_ms"], "fwd_bwd_ms": fb[key]["step_ms"],
                        "ratio": r["step_ms"] / fb[key]["step_ms"]})
    return out


def markdown(env: dict, results: list[dict]) -> str:
    lines = [f"# Training/inference benchmark on {env['device_name']}", "",
             f"torch {env['torch']}, CUDA {env['cuda']}, Python {env['python']}, "
             f"threads {env['threads']}", "",
             "## Training step (samples/s)", "",
             "| model | batch | variant | samples/s | ms/step | setup s |",
             "|---|---:|---|---:|---:|---:|"]
    for r in results:
        if r.get("what") == "train":
            if "samples_per_s" in r:
                lines.append(f"| {r['model']} | {r['batch_size']} | {r['variant']} | "
                             f"{r['samples_per_s']:,.0f} | {r['step_ms']:.2f} | "
                             f"{r['setup_s']:.1f} |")
            else:
                lines.append(f"| {r['model']} | {r.get('batch_size')} | {r.get('variant')} | "
                             f"failed: {r.get('error', '')[:80]} | | |")
    lines += ["", "## Bare forward+backward (samples/s)", "",
              "| model | batch | variant | samples/s | ms/step |", "|---|---:|---|---:|---:|"]
    for r in results:
        if r.get("what") == "fwd_bwd":
            if "samples_per_s" in r:
                lines.append(f"| {r['model']} | {r['batch_size']} | {r['variant']} | "
                             f"{r['samples_per_s']:,.0f} | {r['step_ms']:.2f} |")
            else:
                lines.append(f"| {r['model']} | {r.get('batch_size')} | {r.get('variant')} | "
                             f"failed: {r.get('error', '')[:80]} | |")
    lines += ["", "## Full step / bare forward+backward", "",
              "| model | batch | variant | step ms | fwd+bwd ms | ratio |",
              "|---|---:|---|---:|---:|---:|"]
    for r in ratios(results):
        lines.append(f"| {r['model']} | {r['batch_size']} | {r['variant']} | "
                     f"{r['step_ms']:.2f} | {r['fwd_bwd_ms']:.2f} | {r['ratio']:.2f} |")
    lines += ["", "## Inference cost", "",
              "| model | params (M) | size (MB) | batch-1 eager ms | batch-1 graph ms (fp32) | "
              "batch-1 graph ms (autocast) | batch-1 compile+graph ms | large batch | "
              "samples/s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if r.get("what") == "inference" and "b1_eager_ms" in r:
            def f(key: str, r: dict = r) -> str:
                return f"{r[key]:.3f}" if key in r else "-"
            lines.append(f"| {r['model']} | {r['params_m']:.2f} | {r['size_mb']:.2f} | "
                         f"{f('b1_eager_ms')} | {f('b1_graph_ms')} | {f('b1_graph_amp_ms')} | "
                         f"{f('b1_compile_graph_ms')} | {r.get('large_batch', '-')} | "
                         f"{r.get('large_batch_samples_per_s', 0):,.0f} |")
        elif r.get("what") == "inference":
            lines.append(f"| {r['model']} | failed: {r.get('error', '')[:80]} |")
    skipped = [r for r in results if r.get("skipped")]
    if skipped:
        lines += ["", "Skipped (time budget): " + "; ".join(
            f"{r['kind']} {r['kw']}" for r in skipped)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--models", default="custom_vit,cnn")
    p.add_argument("--batches", default=None,
                   help="comma-separated batch sizes, main first (default: 512,4096 on CUDA, "
                        "512 on CPU)")
    p.add_argument("--budget", type=float, default=1e9, help="seconds for all sections")
    p.add_argument("--seconds", type=float, default=None, help="minimum timed seconds each")
    p.add_argument("--iters", type=int, default=None, help="minimum timed iterations each")
    p.add_argument("--runs", type=int, default=400, help="batch-1 latency runs")
    p.add_argument("--threads", type=int, default=None, help="CPU threads")
    p.add_argument("--quick", action="store_true", help="skip the optional sections")
    p.add_argument("--out", type=Path, default=None, help="folder for the JSON and Markdown")
    args = p.parse_args(argv)
    t_start = time.monotonic()
    from trainer.engine.device import configure_backends, device_name, select_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    configure_backends(device)
    cuda = device.type == "cuda"
    batches = [int(b) for b in (args.batches or ("512,4096" if cuda else "512")).split(",")]
    args.seconds = args.seconds if args.seconds is not None else (2.0 if cuda else 5.0)
    args.iters = args.iters if args.iters is not None else (20 if cuda else 3)
    env = {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
           "cuda": torch.version.cuda, "python": platform.python_version(),
           "threads": torch.get_num_threads(), "host": platform.node(),
           "argv": sys.argv[1:]}
    print(json.dumps(env), flush=True)
    results: list[dict] = []
    out_dir = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else None)

    def save() -> None:
        if out_dir is None:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        name = "bench_train_" + device.type
        (out_dir / f"{name}.json").write_text(json.dumps(
            {"env": env, "results": results, "ratios": ratios(results)}, indent=2))
        (out_dir / f"{name}.md").write_text(markdown(env, results))

    for kind, cost, kw in plan_sections(device, args.models.split(","), batches, args.quick):
        left = args.budget - (time.monotonic() - t_start)
        if left < cost:
            results.append({"skipped": True, "kind": kind, "kw": kw})
            print(f"skip {kind} {kw}: {left:.0f} s left of the budget", flush=True)
            continue
        t0 = time.monotonic()
        try:
            r = run_section(kind, kw, device, args)
        except Exception as exc:  # record and go on: one failure must not lose the rest
            traceback.print_exc()
            r = {"what": "inference" if kind == "inference" else kind, "model": kw["model"],
                 "batch_size": kw.get("batch"), "variant": kw.get("variant"),
                 "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
        finally:
            if cuda:
                torch.cuda.empty_cache()
                torch._dynamo.reset()
        r["wall_s"] = round(time.monotonic() - t0, 1)
        results.append(r)
        print(json.dumps(r), flush=True)
        save()
    print(markdown(env, results), flush=True)
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
