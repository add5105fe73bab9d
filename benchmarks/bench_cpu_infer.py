"""CPU inference backends side by side: which one should the predictor use on a CPU?

For the shipped demo CNN (``resources/demo/models/demo-cnn.cvmodel``) and a CustomViT with
random weights (the demo's 13 classes and mean image; speed does not depend on the weights),
each backend runs the *whole* prediction of uint8 patches: /255, whitening, the network,
softmax (what ``trainer.predict.Predictor`` computes). Backends:

- ``eager``: torch float32, contiguous layout (the reference);
- ``channels_last``: torch float32 with model and input in channels-last layout;
- ``compile``: ``torch.compile`` (inductor, CPU), compiled per batch size; skipped with a note
  when compiling fails or one shape takes over 2 minutes (``--no-compile`` skips it);
- ``bf16``: torch under ``torch.autocast("cpu", bfloat16)`` where oneDNN has bf16 here;
- ``int8_dyn``: ``torch.ao.quantization.quantize_dynamic`` of the Linear layers (qint8);
- ``onnxruntime``: the graph of :mod:`trainer.engine.onnx_export` (the same one the
  predictor builds), CPU execution provider, ``intra_op_num_threads`` = threads; and
  ``ort_nospin``, the same with its idle threads not spinning
  (``session.intra_op.allow_spinning`` 0: kinder to a cropping thread beside it);
- ``openvino``: the same ONNX graph compiled by OpenVINO for its CPU plugin
  (``INFERENCE_NUM_THREADS`` = threads), when the ``openvino`` package imports: with its
  default precision (bf16 on CPUs that have it) and, as ``openvino_f32``, with
  ``INFERENCE_PRECISION_HINT`` f32.

Figures, all in one run with ``--threads`` (default 2) intra-op threads everywhere:

- batch 1 latency (a sample = the mean of ``--calls1`` consecutive single-patch calls) and
  batch 256 throughput (a sample = one call on 256 patches), after one warm-up call per
  shape; ``--rounds`` (default 7) rounds in which every backend takes one sample in turn
  (interleaved, so load drift on a shared machine hits all alike); each backend's figure is
  the median over rounds of its ratio to eager's sample in the same round (> 1: faster), with
  eager's median time beside it;
- accuracy vs float32 eager: the largest absolute difference of probabilities and the argmax
  agreement, on 256 random patches and on every demo cell (3,348 cells of
  ``resources/demo/points.csv``, cropped at the model's field of view).

    .venv/bin/python benchmarks/bench_cpu_infer.py                # the whole table
    .venv/bin/python benchmarks/bench_cpu_infer.py --no-compile --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package
DEMO = REPO / "resources/demo"
DEMO_MODEL = DEMO / "models/demo-cnn.cvmodel"

Backend = Callable[[np.ndarray], np.ndarray]  # uint8 (N, 40, 40, 3) -> probs (N, K)


def load_models():
    """[(name, torch model, mean image (3, 40, 40), classes, fov_px)] for the CNN and the ViT."""
    import torch

    from trainer.engine.modelfile import build_model, load_model_file
    from trainer.models import create_model

    mf = load_model_file(DEMO_MODEL)
    cnn = build_model(mf, "cpu")
    torch.manual_seed(0)
    vit = create_model("custom_vit", len(mf.classes)).eval()
    fov = float(mf.meta.get("fov_px", 40))
    return [("CNN (demo)", cnn, mf.mean_image, mf.classes, fov),
            ("CustomViT", vit, mf.mean_image, mf.classes, fov)]


def torch_backend(model, mean, *, channels_last=False, bf16=False, compiled=False) -> Backend:
    import torch

    from trainer.engine.onnx_export import PreprocessedClassifier

    net = model.to(memory_format=torch.channels_last) if channels_last else model
    wrapped = PreprocessedClassifier(net, mean).eval()
    fn = torch.compile(wrapped, dynamic=False) if compiled else wrapped

    def run(patches: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(patches)
        with torch.inference_mode():
            if bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    probs = fn(x)[0]
            else:
                probs = fn(x)[0]
        return probs.float().numpy()

    return run


def int8_backend(model, mean) -> Backend:
    import copy

    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    return torch_backend(q, mean)


def ort_backend(graph: bytes, threads: int, spin: bool = True) -> Backend:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
    return lambda patches: session.run(["probs"], {"patches": patches})[0]


def openvino_backend(graph: bytes, threads: int, precision: str | None = None) -> Backend:
    import openvino as ov

    core = ov.Core()
    config: dict[str, object] = {"INFERENCE_NUM_THREADS": threads}
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    compiled = core.compile_model(core.read_model(graph), "CPU", config)
    out = compiled.output("probs")
    request = compiled.create_infer_request()

    def run(patches: np.ndarray) -> np.ndarray:
        return np.array(request.infer({"patches": patches})[out])

    return run


def build_backends(model, mean, threads: int, compile_ok: bool, notes: list[str],
                   label: str) -> dict[str, Backend]:
    import torch

    from trainer.engine.onnx_export import export_graph

    b: dict[str, Backend] = {"eager": torch_backend(model, mean),
                             "channels_last": torch_backend(model, mean, channels_last=True)}
    if compile_ok:
        b["compile"] = torch_backend(model, mean, compiled=True)
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        b["bf16"] = torch_backend(model, mean, bf16=True)
    else:
        notes.append("bf16: this CPU has no oneDNN bf16 support; skipped")
    b["int8_dyn"] = int8_backend(model, mean)
    t0 = time.perf_counter()
    graph = export_graph(model, mean, arch=label)
    notes.append(f"{label}: ONNX export {time.perf_counter() - t0:.1f} s, "
                 f"{len(graph) / 1e6:.1f} MB")
    b["onnxruntime"] = ort_backend(graph, threads)
    b["ort_nospin"] = ort_backend(graph, threads, spin=False)
    try:
        b["openvino"] = openvino_backend(graph, threads)
        b["openvino_f32"] = openvino_backend(graph, threads, "f32")
    except Exception as exc:  # not installed, or its CPU plugin refuses the graph
        notes.append(f"openvino: skipped ({type(exc).__name__}: {str(exc)[:120]})")
    return b


def warm_up(backends: dict[str, Backend], shapes: list[np.ndarray], notes: list[str],
            label: str) -> None:
    """One call per shape; compiles there (and drops compile when it fails or is too slow)."""
    for name in list(backends):
        for x in shapes:
            t0 = time.perf_counter()
            try:
                backends[name](x)
            except Exception as exc:
                notes.append(f"{label} {name}: failed on batch {len(x)} "
                             f"({type(exc).__name__}: {str(exc)[:150]}); skipped")
                del backends[name]
                break
            took = time.perf_counter() - t0
            if name == "compile":
                notes.append(f"{label} compile: first call at batch {len(x)} {took:.0f} s")
                if took > 120:
                    notes.append(f"{label} compile: over 2 minutes to compile; skipped")
                    del backends[name]
                    break


def timed(fn: Backend, x: np.ndarray, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn(x)
    return (time.perf_counter() - t0) / calls


def measure(backends: dict[str, Backend], x1: np.ndarray, x256: np.ndarray, rounds: int,
            calls1: int) -> dict[str, dict[str, float]]:
    """Per backend: median ratio to eager (speed-up) at batch 1 and 256, and eager's times."""
    samples: dict[str, dict[str, list[float]]] = {n: {"b1": [], "b256": []} for n in backends}
    for _ in range(rounds):
        for name, fn in backends.items():
            samples[name]["b1"].append(timed(fn, x1, calls1))
            samples[name]["b256"].append(timed(fn, x256, 1))
    out = {}
    for name in backends:
        row = {}
        for key in ("b1", "b256"):
            ratios = [e / s for e, s in zip(samples["eager"][key], samples[name][key],
                                            strict=True)]
            row[f"{key}_speedup"] = statistics.median(ratios)
            row[f"{key}_s"] = statistics.median(samples[name][key])
        out[name] = row
    return out


def accuracy(backends: dict[str, Backend], data: np.ndarray) -> dict[str, tuple[float, float]]:
    """(max |p - p_eager|, argmax agreement) per backend, in chunks of 256."""

    def probs_of(fn: Backend) -> np.ndarray:
        return np.concatenate([fn(data[i:i + 256]) for i in range(0, len(data), 256)])

    ref = probs_of(backends["eager"])
    out = {}
    for name, fn in backends.items():
        p = probs_of(fn)
        out[name] = (float(np.abs(p - ref).max()),
                     float((p.argmax(1) == ref.argmax(1)).mean()))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls1", type=int, default=30, help="batch-1 calls per sample")
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from trainer.engine.points import points_patches

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(0)
    rand = rng.integers(0, 256, (256, 40, 40, 3), dtype=np.uint8)
    notes: list[str] = []
    results = []
    for label, model, mean, _classes, fov in load_models():
        cells, _, _ = points_patches(DEMO / "points.csv", DEMO, fov)
        cells = np.ascontiguousarray(cells)
        backends = build_backends(model, mean, args.threads, args.compile, notes, label)
        warm_up(backends, [rand[:1], rand], notes, label)
        speed = measure(backends, rand[:1], rand, args.rounds, args.calls1)
        acc_rand = accuracy(backends, rand)
        acc_cells = accuracy(backends, cells)
        results.append((label, speed, acc_rand, acc_cells, len(cells)))

    print(f"# CPU inference, {args.threads} threads, torch {torch.__version__}; "
          f"{args.rounds} interleaved rounds, medians; load: {os.getloadavg()[0]:.2f} "
          f"(1-min average, {os.cpu_count()} CPUs)")
    print("speed-up = torch eager time / backend time in the same round (> 1: faster)\n")
    head = (f"{'model':<12} {'backend':<14} {'b1 ms':>7} {'b1 x':>6} {'b256 /s':>8} "
            f"{'b256 x':>7} {'maxdiff rand':>12} {'argmax rand':>11} {'maxdiff cells':>13} "
            f"{'argmax cells':>12}")
    print(head)
    print("-" * len(head))
    for label, speed, acc_rand, acc_cells, n_cells in results:
        for name, row in speed.items():
            dr, ar = acc_rand[name]
            dc, ac = acc_cells[name]
            print(f"{label:<12} {name:<14} {row['b1_s'] * 1e3:7.2f} {row['b1_speedup']:6.2f} "
                  f"{256 / row['b256_s']:8.0f} {row['b256_speedup']:7.2f} {dr:12.1e} "
                  f"{ar:11.4f} {dc:13.1e} {ac:12.4f}")
        print(f"{'':<12} (demo cells: {n_cells})")
    if notes:
        print("\nnotes:")
        for n in notes:
            print(f"- {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
