"""Speed measurements that run the trainer's real code paths on synthetic data: the training
step (each variant of ``trainer.engine.step``), a bare forward+backward of the same model, and
the study's inference cost (batch-1 latency over 400 runs after warm-up, parameters, size,
plus large-batch throughput). Used by ``python -m trainer benchmark``,
``benchmarks/bench_train.py`` and ``benchmarks/gpu_suite.sh``.

Timing: the device is synchronised before the clock starts and after the last iteration, so
asynchronous CUDA work is counted; every figure follows warm-up iterations (compilation, cuDNN
autotuning and graph capture are reported separately as ``setup_s``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from trainer.engine.device import amp_dtype, autocast, prefers_channels_last, synchronize
from trainer.engine.step import LrSchedule, StepData, TrainStepper, make_optimizer

VARIANTS = {  # name -> (compile scope, cuda graph)
    "eager": (None, False),
    "compile": ("step", False),
    "cuda-graph": (None, True),
    "compile(model)+cuda-graph": ("model", True),
    "compile+cuda-graph": ("step", True),
}


def synthetic_patches(n: int, num_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 patches with labels (the content does not matter for speed)."""
    rng = np.random.default_rng(seed)
    patches = rng.integers(0, 256, size=(n, 40, 40, 3), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=n).astype(np.int64)
    return patches, labels


def _timeit(fn: Callable[[], None], device: torch.device, iters: int,
            min_seconds: float = 0.0) -> tuple[float, int]:
    """Seconds per call of ``fn`` (synchronised), running at least ``iters`` calls and at
    least ``min_seconds``."""
    synchronize(device)
    t0 = time.perf_counter()
    n = 0
    while n < iters or time.perf_counter() - t0 < min_seconds:
        fn()
        n += 1
        if n >= iters and n % 16 == 0:
            synchronize(device)
    synchronize(device)
    return (time.perf_counter() - t0) / n, n


def _model(name: str, num_classes: int, device: torch.device, model_args: dict | None):
    from trainer.models import create_model

    torch.manual_seed(0)
    model = create_model(name, num_classes, **(model_args or {})).to(device)
    if prefers_channels_last(model, device):  # as the trainer runs it
        model = model.to(memory_format=torch.channels_last)
    return model


def bench_train_step(
    model_name: str,
    device: torch.device,
    batch_size: int = 512,
    variant: str = "eager",
    *,
    num_classes: int = 16,
    n_patches: int = 8192,
    iters: int = 20,
    min_seconds: float = 2.0,
    amp: str = "auto",
    model_args: dict | None = None,
) -> dict:
    """Samples/s of the full training step (gather + augmentation + whitening + forward +
    loss + backward + AdamW) for one variant of :class:`TrainStepper` (no fallback: a variant
    that fails raises)."""
    scope, graph = VARIANTS[variant]
    dt = amp_dtype(device, amp)
    model = _model(model_name, num_classes, device, model_args).train()
    patches, labels = synthetic_patches(n_patches, num_classes)
    from trainer.formats.augment_plan import build_augmented_index

    plan = build_augmented_index(n_patches, 0)
    mean = torch.from_numpy(patches.mean(axis=(0,)).transpose(2, 0, 1) / 255.0).float()
    data = StepData(inputs=torch.from_numpy(patches).to(device),
                    labels=torch.from_numpy(labels).to(device),
                    plan=torch.from_numpy(plan).to(device), mean=mean.to(device), augment=True)
    optimizer = make_optimizer(model, "adamw", 1e-4, 0.01, device, cuda_graph=graph)
    steps_total = 10_000_000
    stepper = TrainStepper(model, optimizer, data, batch_size, device, dt,
                           LrSchedule(1e-4, "cosine", 100, steps_total), compile_scope=scope,
                           cuda_graph=graph, name=variant,
                           channels_last=prefers_channels_last(model, device))
    t0 = time.perf_counter()
    stepper.prepare()
    stepper.start_epoch(np.random.default_rng(0).permutation(data.n_entries))
    for _ in range(3):
        stepper.step()
    synchronize(device)
    setup_s = time.perf_counter() - t0
    per_epoch = stepper.steps_per_epoch

    def one() -> None:
        if stepper.global_step % per_epoch == per_epoch - 1:
            stepper.start_epoch(np.random.default_rng(stepper.global_step).permutation(
                data.n_entries))
        stepper.step()

    sec, n = _timeit(one, device, iters, min_seconds)
    loss, _ = stepper.read()
    return {"what": "train", "model": model_name, "variant": variant,
            "batch_size": batch_size, "samples_per_s": batch_size / sec,
            "step_ms": sec * 1e3, "iters": n, "setup_s": setup_s,
            "finite_loss": bool(np.isfinite(loss)), "device": str(device),
            "amp": str(dt).replace("torch.", "") if dt else "off"}


def bench_fwd_bwd(
    model_name: str,
    device: torch.device,
    batch_size: int = 512,
    variant: str = "eager",
    *,
    num_classes: int = 16,
    iters: int = 20,
    min_seconds: float = 2.0,
    amp: str = "auto",
    model_args: dict | None = None,
) -> dict:
    """Samples/s of a bare forward + cross-entropy + backward on one fixed float batch (no
    data path, no optimiser): the floor the full step is compared with."""
    scope, graph = VARIANTS[variant]
    dt = amp_dtype(device, amp)
    model = _model(model_name, num_classes, device, model_args).train()
    x = torch.randn(batch_size, 3, 40, 40, device=device) * 0.25
    if prefers_channels_last(model, device):
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch_size,), device=device)
    fwd = torch.compile(model, dynamic=False) if scope else model

    def body() -> None:
        with autocast(device, dt, cache=not graph):
            out = fwd(x)
        F.cross_entropy(out.float(), y).backward()

    t0 = time.perf_counter()
    if graph:
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):
                model.zero_grad(set_to_none=True)
                body()
        torch.cuda.current_stream(device).wait_stream(side)
        model.zero_grad(set_to_none=True)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            body()
        run = g.replay
    else:
        def run() -> None:
            model.zero_grad(set_to_none=True)
            body()
        for _ in range(3):
            run()
    synchronize(device)
    setup_s = time.perf_counter() - t0
    sec, n = _timeit(run, device, iters, min_seconds)
    return {"what": "fwd_bwd", "model": model_name, "variant": variant,
            "batch_size": batch_size, "samples_per_s": batch_size / sec,
            "step_ms": sec * 1e3, "iters": n, "setup_s": setup_s, "device": str(device)}


def model_size(model: torch.nn.Module) -> dict:
    params = sum(p.numel() for p in model.parameters())
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    nbytes += sum(b.numel() * b.element_size() for b in model.buffers())
    return {"params": params, "params_m": params / 1e6, "size_mb": nbytes / 1e6}


def inference_cost(
    model: torch.nn.Module,
    device: torch.device,
    *,
    runs: int = 400,
    warmup: int = 50,
    large_batch: int | None = None,
    graph: bool = True,
    compile_graph: bool = False,
    amp: str = "auto",
    min_seconds: float = 2.0,
) -> dict:
    """The study's inference cost: mean forward time per sample at batch 1 over ``runs`` runs
    after ``warmup``, parameters and size in MB; plus throughput at ``large_batch``.

    Batch 1: ``b1_eager_ms`` under the run's autocast; on CUDA also replayed as a CUDA graph,
    ``b1_graph_ms`` in float32 (what :class:`trainer.predict.Predictor` replays for one patch),
    ``b1_graph_amp_ms`` under autocast (a cast kernel per weight: slower at batch 1), and with
    ``compile_graph`` ``b1_compile_graph_ms``, the ``torch.compile``d model in float32."""
    dt = amp_dtype(device, amp)
    model = model.to(device).eval()
    out: dict = {"device": str(device), **model_size(model),
                 "amp": str(dt).replace("torch.", "") if dt else "off"}
    fmt = torch.contiguous_format
    if prefers_channels_last(model, device):  # as the predictor runs it
        model, fmt = model.to(memory_format=torch.channels_last), torch.channels_last
    x1 = (torch.randn(1, 3, 40, 40, device=device) * 0.25).contiguous(memory_format=fmt)

    def fwd(m, x):
        with torch.inference_mode(), autocast(device, dt, cache=False):
            return m(x)

    for _ in range(warmup):
        fwd(model, x1)
    synchronize(device)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fwd(model, x1)
        synchronize(device)
        times.append(time.perf_counter() - t0)
    out["b1_eager_ms"] = float(np.mean(times) * 1e3)
    out["b1_eager_median_ms"] = float(np.median(times) * 1e3)
    if device.type == "cuda" and graph:
        variants: list[tuple[str, Callable[..., Any], torch.dtype | None]] = [
            ("b1_graph_ms", model, None), ("b1_graph_amp_ms", model, dt)]
        if compile_graph:
            variants.append(("b1_compile_graph_ms", torch.compile(model, dynamic=False), None))
        for key, m, dtype in variants:
            try:
                out[key] = _graphed_latency(m, x1, device, dtype, runs, warmup)
            except Exception as exc:  # report, do not lose the other figures
                out[key + "_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    if large_batch:
        xb = (torch.randn(large_batch, 3, 40, 40, device=device) * 0.25).contiguous(
            memory_format=fmt)
        for _ in range(3):
            fwd(model, xb)
        sec, n = _timeit(lambda: fwd(model, xb), device, 5, min_seconds)
        out["large_batch"] = large_batch
        out["large_batch_samples_per_s"] = large_batch / sec
    return out


def _graphed_latency(model, x1, device, dt, runs: int, warmup: int) -> float:
    static_in = x1.clone()
    with torch.no_grad():
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(5):
                with autocast(device, dt, cache=False):
                    model(static_in)
        torch.cuda.current_stream(device).wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g), autocast(device, dt, cache=False):
            model(static_in)
    for _ in range(warmup):
        g.replay()
    torch.cuda.synchronize(device)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        g.replay()
        torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return float(np.mean(times) * 1e3)
