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

Thread safety: one ``predict`` at a time per predictor (a lock); call it from a worker
thread, never the GUI thread.
"""

from __future__ import annotations

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


class Predictor:
    """A loaded model file, ready to predict. Build it with :meth:`load`."""

    def __init__(self, model: CellClassifier, model_file: ModelFile, device: torch.device,
                 amp: str = "auto", use_graph: bool = True, compile_single: bool = False) -> None:
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

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto", *, amp: str = "auto",
             use_graph: bool = True, compile_single: bool = False) -> Predictor:
        """Load a model file (``ModelFileError`` when it is missing, corrupt or foreign) and
        build its model on ``device`` ("auto": CUDA, then MPS, then CPU)."""
        mf = load_model_file(path)
        dev = select_device(device)
        model = build_model(mf, dev)
        return cls(model, mf, dev, amp, use_graph, compile_single)

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
    ) -> PredictionResult:
        """Class probabilities of ``patches_u8`` ((N, 40, 40, 3) or one (40, 40, 3) uint8).

        ``blur_sigma`` > 0 blurs first (``blur_mode`` "post": the 40x40 patch; "pre": the
        ``source_crops`` (N, S0, S0, 3) with sigma x S0 / 40, then resized), as
        :mod:`trainer.robustness` defines it; whitening follows the blur."""
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
        k = len(self.classes)
        if len(patches) == 0:
            return PredictionResult(np.zeros((0, k), np.float32), self.classes,
                                    np.zeros((0, self.num_features), np.float32)
                                    if return_embeddings else None)
        with self._lock:
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
