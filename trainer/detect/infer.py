"""Running a trained detector: tiled inference and peak finding.

The image is read and reduced to the working resolution (1/``downsample``, a box average,
as in training) tile by tile. Each tile is a *core* of ``tile`` working pixels read with a
*halo* at least the network's receptive field plus the peak neighbourhood (``halo`` in the
model file), clipped at the image's borders, its corners on multiples of ``2 ** depth`` (the
pooling grid): so the heatmap over the core is the one the whole image would give. A peak is
a pixel whose logit is the maximum of its (2r+1)^2 neighbourhood (max-pool NMS, r =
``nms_radius``) and whose probability is at least the threshold; it is kept only by the tile
whose core holds its pixel: the classical detector's ownership rule, so no cell is found twice
at a seam. Its position is refined to a fraction of a pixel by a parabola through the log
probabilities of its neighbours, then mapped to full-resolution pixels.

With ``tta`` (test-time augmentation) each tile's heatmap is the mean of the logits of its 8
orientations (4 quarter turns, each also mirrored), each turned back: 8 times the work, for a
heatmap that no longer depends on which way the slide was scanned. The tile's padded sides are
multiples of the pooling grid, so every orientation sees the same grid.

On the CPU the network runs as an ONNX graph in ONNX Runtime where it can (exported when the
detector is loaded, about a second; heights and widths dynamic): 1.3-1.5 times torch eager on
this U-Net (measured at 512 x 512 on one thread). Torch eager stays the fallback, as for the
classifier (``trainer/predict.py``; ``CELLVIEWER_CPU_BACKEND=torch`` keeps it).
"""

from __future__ import annotations

import io
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from trainer.detect.data import reduce_rgb, to_full
from trainer.detect.model import normalise

log = logging.getLogger(__name__)
Reader = Callable[[int, int, int, int], np.ndarray]  # (x, y, w, h) -> (h, w, 3) uint8
DEFAULT_TILE = 512  # working pixels


@dataclass
class Found:
    """Detections in full-resolution pixels, with the heatmap's probability as ``score``."""

    x: np.ndarray
    y: np.ndarray
    score: np.ndarray
    tiles: int = 0
    tiles_skipped: int = 0  # tiles a ``skip`` rule called empty (not read, not run)
    megapixels: float = 0.0
    elapsed_s: float = 0.0
    partial: bool = False
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.x)

    def xy(self) -> np.ndarray:
        return np.stack([self.x, self.y], axis=1) if len(self.x) else np.zeros((0, 2))

    @property
    def megapixels_per_s(self) -> float:
        return self.megapixels / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m


def find_peaks(logits: torch.Tensor, radius: int, threshold: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols as float with sub-pixel offsets, probabilities) of the peaks of a (H, W)
    logit map: local maxima of the (2r+1)^2 window (max-pool NMS) at or above ``threshold``."""
    pooled = F.max_pool2d(logits[None, None], 2 * radius + 1, stride=1, padding=radius)[0, 0]
    cut = math.log(threshold / (1 - threshold)) if 0 < threshold < 1 else (
        -math.inf if threshold <= 0 else math.inf)
    keep = (logits == pooled) & (logits >= cut)
    iy, ix = torch.nonzero(keep, as_tuple=True)
    logp = F.logsigmoid(logits)
    h, w = logits.shape

    def offset(c: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        den = lo - 2 * c + hi
        off = torch.where(den < 0, 0.5 * (lo - hi) / den.clamp(max=-1e-12), torch.zeros_like(c))
        return off.clamp(-0.5, 0.5)

    c = logp[iy, ix]
    dy = offset(c, logp[(iy - 1).clamp(min=0), ix], logp[(iy + 1).clamp(max=h - 1), ix])
    dx = offset(c, logp[iy, (ix - 1).clamp(min=0)], logp[iy, (ix + 1).clamp(max=w - 1)])
    return ((iy.float() + dy).cpu().numpy().astype(np.float64),
            (ix.float() + dx).cpu().numpy().astype(np.float64),
            torch.sigmoid(logits[iy, ix]).cpu().numpy().astype(np.float64))


class _OnnxRuntimeHeatmap:
    """The network as an ONNX graph ((1, 3, H, W) float32 -> (1, 1, H, W) logits, H and W
    dynamic) in an ONNX Runtime session on the CPU."""

    def __init__(self, model: torch.nn.Module, threads: int) -> None:
        import warnings

        import onnxruntime as ort

        buf = io.BytesIO()
        sample = torch.zeros(1, 3, 64, 64)
        with warnings.catch_warnings():  # the exporter's deprecation notes are not the user's
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (sample,), cast(Any, buf), input_names=["image"],
                              output_names=["logits"], opset_version=17, dynamo=False,
                              dynamic_axes={"image": {2: "h", 3: "w"},
                                            "logits": {2: "h", 3: "w"}})
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # idle threads sleep rather than spin: they share the cores with the app's GUI thread
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(buf.getvalue(), opts,
                                            providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        image = np.ascontiguousarray(x.numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(["logits"], {"image": image})[0])


class Detector:
    """A loaded detector model: ``detect_array`` for an image in memory, ``detect_reader``
    for anything that reads a region (a slide through the app's image sources)."""

    def __init__(self, model: torch.nn.Module, meta: dict[str, Any], device: torch.device,
                 path: Path | None = None, tta: bool = False, backend: str = "auto") -> None:
        self.model, self.meta, self.device, self.path = model, meta, device, path
        self.tta = bool(tta)  # the default of every run (a run's ``tta`` argument wins)
        self._ort: _OnnxRuntimeHeatmap | None = None
        self.backend_note = ""
        self._setup_cpu_backend(backend)
        s = meta["detector"]
        self.downsample = int(s["downsample"])
        self.nms_radius = int(s["nms_radius"])
        self.halo = int(s["halo"])
        self.threshold = float(s["threshold"])
        self.diameter_px = float(s["diameter_px"])
        self.multiple = 2 ** int((meta.get("arch_kwargs") or {}).get("depth", 2))

    @property
    def backend(self) -> str:
        """What runs the network: "onnxruntime" or "torch"."""
        return "onnxruntime" if self._ort is not None else "torch"

    def _setup_cpu_backend(self, backend: str) -> None:
        from trainer.predict import choose_cpu_backend

        choice = choose_cpu_backend(backend)
        if self.device.type != "cpu" or choice == "torch":
            self.backend_note = "torch" if self.device.type == "cpu" else \
                f"torch on {self.device.type}"
            return
        try:
            self._ort = _OnnxRuntimeHeatmap(self.model, torch.get_num_threads())
            self.backend_note = f"onnxruntime ({torch.get_num_threads()} threads)"
        except Exception as exc:  # no onnxruntime/onnx, or the export failed: torch is right
            if choice == "onnxruntime":
                raise
            self._ort = None
            self.backend_note = f"torch (ONNX Runtime not used: {type(exc).__name__}: {exc})"
            log.info("%s: detection on torch eager; ONNX Runtime not used (%s: %s)",
                     self.path, type(exc).__name__, exc)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto", tta: bool = False,
             backend: str = "auto") -> Detector:
        """Load a detector model file (a classifier file is refused by name) onto ``device``
        ("auto": CUDA, then MPS, then CPU); ``tta``: its runs average the 8 orientations;
        ``backend``: the CPU path, "auto" (ONNX Runtime where it works), "torch" or
        "onnxruntime"."""
        from trainer.detect.modelfile import build_detector, load_detector_file
        from trainer.engine.device import select_device

        df = load_detector_file(path)
        dev = select_device(device)
        return cls(build_detector(df, dev), df.meta, dev, df.path, tta=tta, backend=backend)

    # ---- running ----------------------------------------------------------------------------
    @torch.inference_mode()
    def heatmap_logits(self, work: np.ndarray, tta: bool = False) -> torch.Tensor:
        """The (H, W) logits of a working-resolution image whose sides are multiples of
        ``2 ** depth`` (float32 normalised (3, H, W)); ``tta``: the mean over the 8
        orientations (see the module doc)."""
        x = torch.from_numpy(np.ascontiguousarray(work))[None].to(self.device)
        net = self._ort if self._ort is not None else self.model
        if not tta:
            return net(x)[0, 0].float()
        total = torch.zeros(x.shape[2:], dtype=torch.float32, device=self.device)
        for mirrored in (False, True):
            xm = torch.flip(x, dims=(3,)) if mirrored else x
            for turns in range(4):
                out = net(torch.rot90(xm, turns, dims=(2, 3)).contiguous())[0, 0].float()
                out = torch.rot90(out, -turns, dims=(0, 1))
                total += torch.flip(out, dims=(1,)) if mirrored else out
        return total / 8

    def detect_array(self, rgb: np.ndarray, *, tile: int | None = DEFAULT_TILE,
                     threshold: float | None = None, tta: bool | None = None,
                     **kwargs: Any) -> Found:
        """Detect in an (H, W, 3) uint8 image; ``tile=None``: one tile (the whole image)."""
        rgb = np.asarray(rgb)
        h, w = rgb.shape[:2]

        def read(x: int, y: int, rw: int, rh: int) -> np.ndarray:
            return rgb[y:y + rh, x:x + rw, :3]

        return self.detect_reader(w, h, read, tile=tile, threshold=threshold, tta=tta, **kwargs)

    def detect_reader(self, width: int, height: int, read: Reader, *,
                      tile: int | None = DEFAULT_TILE, threshold: float | None = None,
                      tta: bool | None = None,
                      skip: Callable[[int, int, int, int], bool] | None = None,
                      progress: Callable[[int, int, int], None] | None = None,
                      cancelled: Callable[[], bool] | None = None) -> Found:
        """Detect over a ``width`` x ``height`` image read by ``read(x, y, w, h)`` (full
        resolution, RGB uint8), tile by tile (see the module doc). ``progress(tiles_done,
        tiles_total, cells)`` after each tile; ``cancelled()`` before each: a cancelled run
        returns what was found, ``partial`` set. ``tta``: each tile's heatmap is the mean over
        its 8 orientations (8 times the work; None: the detector's ``tta``). ``skip(x, y, w,
        h)``: True for a tile (its full-resolution box, halo included) that holds nothing to
        find, such as plain glass: it is neither read nor run."""
        t0 = time.perf_counter()
        f, m, halo = self.downsample, self.multiple, self.halo
        thr = self.threshold if threshold is None else float(threshold)
        tta = self.tta if tta is None else bool(tta)
        wk, hk = -(-width // f), -(-height // f)
        wp, hp = _round_up(wk, m), _round_up(hk, m)
        core = _round_up(max(tile, m), m) if tile else max(wp, hp)
        cores = [(x0, y0) for y0 in range(0, hk, core) for x0 in range(0, wk, core)]
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        ss: list[np.ndarray] = []
        done = skipped = 0
        partial = False
        for x0, y0 in cores:
            if cancelled is not None and cancelled():
                partial = True
                break
            x1, y1 = min(x0 + core, wk), min(y0 + core, hk)
            wx0, wy0 = max(0, x0 - halo), max(0, y0 - halo)
            wx1, wy1 = min(wp, _round_up(x1 + halo, m)), min(hp, _round_up(y1 + halo, m))
            fx0, fy0 = wx0 * f, wy0 * f
            fx1, fy1 = min(width, wx1 * f), min(height, wy1 * f)
            if skip is not None and skip(fx0, fy0, fx1 - fx0, fy1 - fy0):
                skipped += 1
                done += 1
                if progress is not None:
                    progress(done, len(cores), int(sum(len(v) for v in xs)))
                continue
            rgb = np.asarray(read(fx0, fy0, fx1 - fx0, fy1 - fy0))[..., :3]
            work = normalise(reduce_rgb(rgb, f))
            padded = np.zeros((3, wy1 - wy0, wx1 - wx0), np.float32)
            padded[:, :work.shape[1], :work.shape[2]] = work
            logits = self.heatmap_logits(padded, tta=tta)
            r, c, s = find_peaks(logits, self.nms_radius, thr)
            ri, ci = np.floor(r + 0.5).astype(int) + wy0, np.floor(c + 0.5).astype(int) + wx0
            own = (ri >= y0) & (ri < y1) & (ci >= x0) & (ci < x1)
            xs.append(c[own] + wx0)
            ys.append(r[own] + wy0)
            ss.append(s[own])
            done += 1
            if progress is not None:
                progress(done, len(cores), int(sum(len(v) for v in xs)))
        x = to_full(np.concatenate(xs) if xs else np.zeros(0), f)
        y = to_full(np.concatenate(ys) if ys else np.zeros(0), f)
        score = np.concatenate(ss) if ss else np.zeros(0)
        x, y = np.clip(x, 0, width - 1e-3), np.clip(y, 0, height - 1e-3)
        notes = [f"cancelled after {done} of {len(cores)} tiles"] if partial else []
        return Found(x, y, score, done, skipped,
                     width * height / 1e6 * done / max(len(cores), 1),
                     time.perf_counter() - t0, partial, notes)


def load_detector(path: str | os.PathLike, device: str = "auto", tta: bool = False,
                  backend: str = "auto") -> Detector:
    """The public entry point (the app and ``cellviewer detect`` import it lazily)."""
    return Detector.load(path, device=device, tta=tta, backend=backend)
