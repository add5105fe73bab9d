"""The prediction API the desktop app calls: load a model file once, then predict class
probabilities (and embeddings) of uint8 patches, optionally after a Gaussian blur.

>>> p = Predictor.load("run/best.cvmodel")          # device "auto": CUDA, MPS, else CPU
>>> r = p.predict(patches_u8)                        # (N, 40, 40, 3) uint8
>>> r.probs.shape, p.classes                         # (N, K) float32, the K class names

The model is built once, kept in eval mode on its device, and called under
``torch.inference_mode``; inputs are whitened with the model's own mean image when its input
mode is "whitened". A single patch is the GUI's live-preview case: on CUDA it replays a CUDA
graph captured on first use (whitening, forward, softmax in one launch); on the CPU it is one
eager forward (a few milliseconds for CustomViT).

The single-patch graph runs in float32, not under the bf16 autocast the batches use: at batch
1 the GPU waits on kernel launches, not arithmetic, and autocast adds a weight-cast kernel per
Linear (CustomViT: 152 operations per forward under autocast, 85 without), so float32 is both
faster and exact. ``compile_single=True`` also compiles the model for that graph with
``torch.compile`` (fewer, fused kernels; tens of seconds on first use).

On the CPU, scratch models run on ONNX Runtime when it imports (``backend="auto"``): at load
the model, with its whitening and softmax, is exported to an in-memory ONNX graph
(:mod:`trainer.engine.onnx_export`; about a second) and run with torch's thread count.
``benchmarks/bench_cpu_infer.py`` measured it against torch eager on 2 threads (ratios from
interleaved runs on a loaded 2-core EPYC): the demo CNN 2.0x at batch 256 and 9-20x at batch 1,
CustomViT 1.1-1.2x and 2.0-3.7x, probabilities within 2e-6 with the same argmax on every demo
cell. torch.compile and channels-last were no faster; bf16 and int8 were faster for CustomViT
at batch 256 (about 1.6x) but moved probabilities by up to 0.005 (0.03 for the CNN) and changed
up to 9% of the argmaxes; OpenVINO in float32 was on a par with ONNX Runtime (10-20% faster at
batch 256, mixed at batch 1; by default it runs bf16 where the CPU has it, 0.02 off).

ONNX Runtime gets at most ``ORT_CPU_BATCH`` (64) patches a call whatever ``batch_size`` asks:
CustomViT's activations at batch 1024 spill out of the CPU's caches (1.6x more time per cell
on 2 threads than at 16-64); the demo CNN does not care.

Torch eager stays the fallback: when onnxruntime or onnx does not import, the export fails, or
the model is a foundation model (exporting a ViT-L at every load is not worth it), with the
reason logged and kept in ``backend_note``; embeddings (``return_embeddings``) always come from
torch. ``backend="torch"`` or the environment variable ``CELLVIEWER_CPU_BACKEND=torch`` forces
torch.

Thread safety: one ``predict`` at a time per predictor (a lock); call it from a worker
thread, never the GUI thread.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from trainer.engine.device import amp_dtype, autocast, prefers_channels_last, select_device
from trainer.engine.infer import forward_batches, model_input
from trainer.engine.modelfile import ModelFile, build_model, load_model_file
from trainer.formats.errors import BadModelError

if TYPE_CHECKING:
    from trainer.models.layers import CellClassifier

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime")
#: Set to "torch" to keep CPU prediction on torch eager (or "onnxruntime" to insist on it).
BACKEND_ENV = "CELLVIEWER_CPU_BACKEND"


#: The largest batch one ONNX Runtime call gets on the CPU (a larger ``batch_size`` is split).
#: Its activations then stay in the CPU's caches: CustomViT on 2 threads of a 2-core EPYC ran
#: 790 cells/s at batch 16-64 against 650 at 128 and 480 at 1024 (1.6x; CPU time per cell
#: likewise), the demo CNN the same at every size.
ORT_CPU_BATCH = 64

#: the orientations of the dihedral group of the square: 4 rotations, each also mirrored
DIHEDRAL = 8


def dihedral(patches: np.ndarray, index: int) -> np.ndarray:
    """Orientation ``index`` (0..7) of (N, H, W, C) patches: ``index % 4`` quarter turns
    (counter-clockwise), mirrored left-right first when ``index >= 4``; 0 is the identity."""
    if not 0 <= index < DIHEDRAL:
        raise ValueError(f"a dihedral orientation is 0..7, not {index}")
    out = patches[:, :, ::-1] if index >= 4 else patches
    return np.ascontiguousarray(np.rot90(out, index % 4, axes=(1, 2)))


@dataclass
class PredictionResult:
    probs: np.ndarray  # (N, K) float32
    classes: list[str]
    embeddings: np.ndarray | None = None  # (N, D) float32, with return_embeddings=True

    @property
    def predicted(self) -> np.ndarray:
        """(N,) int64: the most probable class index."""
        return self.probs.argmax(axis=1) if len(self.probs) else np.zeros(0, np.int64)

    @property
    def confidence(self) -> np.ndarray:
        """(N,) float32: the probability of the predicted class."""
        return self.probs.max(axis=1) if len(self.probs) else np.zeros(0, np.float32)

    @property
    def labels(self) -> list[str]:
        return [self.classes[i] for i in self.predicted]


class _GraphedSingle:
    """Batch-1 inference as one CUDA graph (whiten, forward, softmax), float32 unless ``amp``
    names a dtype, of the compiled model with ``compile_model``."""

    def __init__(self, model, mean, device, amp: torch.dtype | None = None,
                 compile_model: bool = False) -> None:
        self.static_in = torch.zeros(1, 40, 40, 3, dtype=torch.uint8, device=device)
        self.host_in = torch.zeros(1, 40, 40, 3, dtype=torch.uint8).pin_memory()
        forward = torch.compile(model, dynamic=False) if compile_model else model

        def fn() -> torch.Tensor:
            with autocast(device, amp, cache=False):
                logits = forward(model_input(self.static_in, mean))
            return torch.softmax(logits.float(), dim=1)

        with torch.no_grad():
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(3):
                    fn()
            torch.cuda.current_stream(device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.static_out = fn()
        self.host_out = torch.zeros(self.static_out.shape, dtype=torch.float32).pin_memory()

    def __call__(self, patch_u8: np.ndarray) -> np.ndarray:
        self.host_in.numpy()[...] = patch_u8
        self.static_in.copy_(self.host_in, non_blocking=True)
        self.graph.replay()
        self.host_out.copy_(self.static_out, non_blocking=True)
        torch.cuda.current_stream(self.static_in.device).synchronize()
        return self.host_out.numpy().copy()


class _OnnxRuntimeCPU:
    """The model's ONNX graph (uint8 patches -> probabilities) in an onnxruntime session."""

    def __init__(self, model: torch.nn.Module, mean: torch.Tensor | None, arch: str,
                 threads: int) -> None:
        import onnxruntime as ort

        from trainer.engine.onnx_export import export_graph

        graph = export_graph(model, mean, arch=arch)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # warnings of graph optimisation are not the user's
        # Idle threads sleep instead of spinning: they share the cores with the app's GUI
        # thread (spinning made a batch prediction's GUI stalls 68 ms instead of 47 on 2 cores).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])

    def __call__(self, patches_u8: np.ndarray, batch_size: int) -> np.ndarray:
        out = []
        batch_size = max(1, min(batch_size, ORT_CPU_BATCH))
        for start in range(0, len(patches_u8), batch_size):
            chunk = np.ascontiguousarray(patches_u8[start:start + batch_size])
            out.append(self.session.run(["probs"], {"patches": chunk})[0])
        return np.concatenate(out).astype(np.float32, copy=False)


def choose_cpu_backend(requested: str) -> str:
    """"auto", "torch" or "onnxruntime" from ``requested``, where "auto" defers to the
    ``CELLVIEWER_CPU_BACKEND`` environment variable (the classifier's and detector's alike)."""
    requested = (requested or "auto").strip().lower()
    if requested == "auto":
        requested = (os.environ.get(BACKEND_ENV) or "auto").strip().lower()
    if requested not in BACKENDS:
        raise ValueError(f"CPU backend must be one of {BACKENDS} (argument or {BACKEND_ENV}), "
                         f"not {requested!r}")
    return requested


class Predictor:
    """A loaded model file, ready to predict. Build it with :meth:`load`."""

    def __init__(self, model: CellClassifier, model_file: ModelFile, device: torch.device,
                 amp: str = "auto", use_graph: bool = True, compile_single: bool = False,
                 backend: str = "auto") -> None:
        self.channels_last = prefers_channels_last(model, device)
        self.model = model.to(memory_format=torch.channels_last) if self.channels_last else model
        self.model_file = model_file
        self.device = device
        self.amp = amp_dtype(device, amp)
        self.whitened = model_file.input_mode == "whitened"
        self.mean = model_file.mean_image.to(device) if self.whitened else None
        self.use_graph = use_graph and device.type == "cuda"
        self.compile_single = compile_single
        self._single: _GraphedSingle | None = None
        self._graph_failed = False
        self._lock = threading.Lock()
        self._ort: _OnnxRuntimeCPU | None = None
        self.backend_note = ""
        self._setup_cpu_backend(choose_cpu_backend(backend))

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto", *, amp: str = "auto",
             use_graph: bool = True, compile_single: bool = False,
             backend: str = "auto") -> Predictor:
        """Load a model file (``ModelFileError`` when it is missing, corrupt or foreign) and
        build its model on ``device`` ("auto": CUDA, then MPS, then CPU). ``backend`` is the
        CPU path: "auto" (ONNX Runtime where it works, else torch), "torch" or "onnxruntime"
        (an error when it cannot be used)."""
        mf = load_model_file(path)
        dev = select_device(device)
        model = build_model(mf, dev)
        return cls(model, mf, dev, amp, use_graph, compile_single, backend)

    @property
    def backend(self) -> str:
        """What runs the probabilities: "onnxruntime" or "torch"."""
        return "onnxruntime" if self._ort is not None else "torch"

    def _setup_cpu_backend(self, choice: str) -> None:
        if self.device.type != "cpu" or choice == "torch":
            self.backend_note = "torch" if self.device.type == "cpu" else \
                f"torch on {self.device.type}"
            return
        try:
            from trainer.models import model_spec
            from trainer.models.ensemble import ENSEMBLE_ARCH

            if self.arch != ENSEMBLE_ARCH and model_spec(self.arch).kind != "scratch":
                raise RuntimeError(f"{self.arch!r} is a foundation model: it runs on torch")
            if self.amp is not None:
                raise RuntimeError("autocast was asked for: it runs on torch")
            self._ort = _OnnxRuntimeCPU(self.model, self.mean, self.arch,
                                        torch.get_num_threads())
            self.backend_note = f"onnxruntime ({torch.get_num_threads()} threads)"
        except Exception as exc:  # no onnxruntime/onnx, or the export failed: torch is right
            if choice == "onnxruntime":
                raise
            self._ort = None
            self.backend_note = f"torch (ONNX Runtime not used: {type(exc).__name__}: {exc})"
            log.info("%s: CPU prediction on torch eager; ONNX Runtime not used (%s: %s)",
                     self.path or self.arch, type(exc).__name__, exc)

    # ---- what the model is ----------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        return self.model_file.classes

    @property
    def path(self) -> Path | None:
        return self.model_file.path

    @property
    def meta(self) -> dict:
        return self.model_file.meta

    @property
    def arch(self) -> str:
        return self.model_file.arch

    @property
    def fov_px(self) -> float:
        return float(self.model_file.meta.get("fov_px", 40))

    @property
    def num_features(self) -> int:
        return int(getattr(self.model, "num_features", 0))

    # ---- prediction -----------------------------------------------------------------------
    def predict(
        self,
        patches_u8: np.ndarray,
        batch_size: int = 256,
        blur_sigma: float = 0.0,
        blur_mode: str = "post",
        source_crops: np.ndarray | None = None,
        return_embeddings: bool = False,
        tta: bool = False,
    ) -> PredictionResult:
        """Class probabilities of ``patches_u8`` ((N, 40, 40, 3) or one (40, 40, 3) uint8).

        ``blur_sigma`` > 0 blurs first (``blur_mode`` "post": the 40x40 patch; "pre": the
        ``source_crops`` (N, S0, S0, 3) with sigma x S0 / 40, then resized), as
        :mod:`trainer.robustness` defines it; whitening follows the blur.

        ``tta``: test-time augmentation: the mean of the probabilities (and embeddings) of the
        8 orientations of the dihedral group (:func:`dihedral`) of each (blurred) patch, each
        orientation predicted as a batch of its own by the same path (ONNX Runtime or torch)."""
        patches = np.asarray(patches_u8)
        if patches.ndim == 3:
            patches = patches[None]
        if patches.ndim != 4 or patches.shape[1:] != (40, 40, 3):
            raise ValueError(f"patches must be (N, 40, 40, 3), got {patches.shape}")
        if patches.dtype != np.uint8:
            raise ValueError(f"patches must be uint8, got {patches.dtype}")
        if blur_sigma and blur_sigma > 0:
            from trainer.formats.blur import blur_for_mode

            if source_crops is not None:
                source_crops = np.asarray(source_crops)
                if source_crops.ndim == 3:
                    source_crops = source_crops[None]
            patches = blur_for_mode(patches, float(blur_sigma), blur_mode, source_crops)
        elif blur_mode not in ("post", "pre"):
            raise ValueError(f"blur mode must be 'post' or 'pre', not {blur_mode!r}")
        if tta and len(patches):
            results = [self._predict(dihedral(patches, i), batch_size, return_embeddings)
                       for i in range(DIHEDRAL)]
            probs = np.stack([r.probs for r in results]).astype(np.float64).mean(axis=0)
            emb = None
            if return_embeddings:
                emb = np.stack([np.asarray(r.embeddings) for r in results]).astype(
                    np.float64).mean(axis=0).astype(np.float32)
            return PredictionResult(probs.astype(np.float32), self.classes, emb)
        return self._predict(patches, batch_size, return_embeddings)

    def _predict(self, patches: np.ndarray, batch_size: int,
                 return_embeddings: bool) -> PredictionResult:
        k = len(self.classes)
        if len(patches) == 0:
            return PredictionResult(np.zeros((0, k), np.float32), self.classes,
                                    np.zeros((0, self.num_features), np.float32)
                                    if return_embeddings else None)
        with self._lock:
            if self._ort is not None and not return_embeddings:
                return PredictionResult(self._finite(self._ort(patches, max(1, int(batch_size)))),
                                        self.classes)
            if len(patches) == 1 and not return_embeddings and self.use_graph:
                probs = self._predict_single_graphed(patches)
                if probs is not None:
                    return PredictionResult(self._finite(probs), self.classes)
            logits, feats = forward_batches(
                self.model, patches, self.device, mean=self.mean, amp_dtype=self.amp,
                batch_size=max(1, int(batch_size)), want_features=return_embeddings,
                channels_last=self.channels_last)
            probs = torch.softmax(logits, dim=1).cpu().numpy().astype(np.float32, copy=False)
            emb = feats.cpu().numpy().astype(np.float32, copy=False) if feats is not None \
                else None
        return PredictionResult(self._finite(probs), self.classes, emb)

    def _finite(self, probs: np.ndarray) -> np.ndarray:
        """``probs``, when every one is a number: a model whose weights are finite can still
        overflow (weights near the float32 limit); its NaN would be written as a confident
        label, so it is refused instead."""
        if not np.isfinite(probs).all():
            bad = int((~np.isfinite(probs)).any(axis=1).sum())
            raise BadModelError(
                f"{self.path}: the model's outputs are not numbers (NaN or infinite) for {bad} "
                f"of {len(probs)} cells: its weights are damaged; use another model file")
        return probs

    def _predict_single_graphed(self, patches: np.ndarray) -> np.ndarray | None:
        if self._graph_failed:
            return None
        try:
            if self._single is None:
                self._single = _GraphedSingle(self.model, self.mean, self.device,
                                              compile_model=self.compile_single)
            return self._single(patches[0])
        except Exception:  # capture or compilation failed here: the eager path is always right
            self._graph_failed = True
            self._single = None
            return None
