"""Cropping the 40x40 patch around each cell marker, fast, by the trainer's exact rule.

The rule is the patch-set format's (``trainer.data.patchset``): a field of view of F level-0
pixels becomes a window of ``S = round(F)`` pixels whose origin is ``floor(x) - S // 2``; pixels of
the window outside the image are filled by reflection about the edge pixel (NumPy ``reflect``,
exactly :func:`trainer.data.patchset.crop_window`), and such cells are flagged ``padded``, never
dropped; a window of S != 40 is resized to 40x40 by :func:`~trainer.data.patchset.resize_to_patch`
(antialiased bilinear). So a patch cropped here for prediction is bit-identical to the one the
trainer would build from the same image and point.

Speed: one ``read_region`` per cell decodes the same slide tiles over and over (about 100-300 us
a cell on a JPEG-tiled pyramid). Instead the cells are grouped by a grid of ``region_px`` squares
(by window origin); each group's bounding box is read once and all its windows are cut out in one
vectorised gather (a strided view of every window position, indexed by the cells' origins).
Groups run on a few threads: OpenSlide decodes with the GIL released. A group of a few cells
spread over a large box is read cell by cell instead (reading the box would decode far more than
the cells need). Array-backed sources are gathered from views, with no region copy at all. Cells
whose window leaves the image (the border) come from the same region read, through reflected
indices equal to ``np.pad``'s (checked against ``crop_window``).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from cellviewer.core.sources import ArraySource, ImageSource
from cellviewer.core.sources.identity import check_image, check_source
from trainer.formats.patchset import PATCH_SIZE, resize_to_patch

DEFAULT_REGION_PX = 1024
# What one more read costs beyond its pixels, in pixels: OpenSlide's cost is nearly all per
# pixel painted (about 15-25 ns, decoding included), plus about 0.3 ms per call (a tile decode,
# ctypes, Python), so a call is worth about a 128x128 area.
_READ_OVERHEAD_PX = 128 * 128
# Windows are gathered in chunks of about this many bytes, bounding the temporary memory of a
# dense group at a large field of view.
_CHUNK_BYTES = 32 << 20


@dataclass
class CropResult:
    """Patches in the order of the input points."""

    patches: np.ndarray  # (N, 40, 40, 3) uint8
    padded: np.ndarray  # (N,) bool: the window left the image and was reflect-padded
    origins: np.ndarray  # (N, 2) int64: (x0, y0) of each window in level-0 pixels
    window_px: int  # S, the side of the source window in level-0 pixels
    fov_px: float  # the field of view asked for, in level-0 pixels
    # (N, S, S, 3) uint8 before the resize (for pre-resize blur) when asked for; at S == 40 it
    # is the very same array as ``patches``.
    source_crops: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.patches.shape[0])

    @property
    def n_padded(self) -> int:
        return int(np.count_nonzero(self.padded))


def window_size(fov_px: float) -> int:
    """The side S of the level-0 window for a field of view of ``fov_px`` pixels."""
    if not math.isfinite(float(fov_px)) or round(float(fov_px)) < 1:
        raise ValueError(f"the field of view must be at least 1 pixel, got {fov_px!r}")
    return int(round(float(fov_px)))  # as trainer.data.build does


def fov_px_from_um(fov_um: float, mpp: float | None, path: object = None) -> float:
    """Convert a field of view in microns to level-0 pixels with the image's microns/pixel."""
    if not mpp or mpp <= 0:
        where = f"{path}: " if path is not None else ""
        raise ValueError(
            f"{where}the image has no microns-per-pixel value, so a field of view in um cannot "
            "be converted; give it in pixels or set the image's resolution"
        )
    return float(fov_um) / float(mpp)


def _windows(region: np.ndarray, size: int) -> np.ndarray:
    """A read-only (h-S+1, w-S+1, S, S, 3) view: ``[y, x]`` is the window with origin (x, y)."""
    h, w, c = region.shape
    s0, s1, s2 = region.strides
    return as_strided(
        region, (h - size + 1, w - size + 1, size, size, c), (s0, s1, s0, s1, s2), writeable=False
    )


class _Cropper:
    """Crops groups of cells into shared output arrays (groups are disjoint: thread-safe)."""

    def __init__(self, source: ImageSource, pts: np.ndarray, size: int, patches: np.ndarray,
                 crops: np.ndarray | None, region_px: int):
        self.source, self.pts, self.size = source, pts, size
        self.patches, self.crops, self.region_px = patches, crops, region_px
        self.views = isinstance(source, ArraySource)
        width, height = source.dimensions
        self.ox = np.floor(pts[:, 0]).astype(np.int64) - size // 2
        self.oy = np.floor(pts[:, 1]).astype(np.int64) - size // 2
        # The part of each window inside the image (empty when the window misses it).
        self.cx0, self.cx1 = np.clip(self.ox, 0, width), np.clip(self.ox + size, 0, width)
        self.cy0, self.cy1 = np.clip(self.oy, 0, height), np.clip(self.oy + size, 0, height)
        self.padded = (self.ox < 0) | (self.oy < 0) | (self.ox + size > width) | (
            self.oy + size > height
        )
        self.missing = (self.cx0 >= self.cx1) | (self.cy0 >= self.cy1)

    def groups(self) -> list[np.ndarray]:
        """Cell indices grouped by the grid square of their window's (clipped) origin."""
        cells = np.flatnonzero(~self.missing)
        if not len(cells):
            return []
        r = self.region_px
        cols = (self.source.dimensions[0] + r - 1) // r
        key = (self.cy0[cells] // r) * cols + self.cx0[cells] // r
        order = np.argsort(key, kind="stable")
        return np.split(cells[order], np.flatnonzero(np.diff(key[order])) + 1)

    def store(self, idx: np.ndarray, windows: np.ndarray) -> None:
        """Write the (n, S, S, 3) windows of cells ``idx`` into the outputs."""
        if self.size == PATCH_SIZE:
            self.patches[idx] = windows
            return
        if self.crops is not None:
            self.crops[idx] = windows
        for i, window in zip(idx.tolist(), windows, strict=True):
            self.patches[i] = resize_to_patch(window)

    def group(self, idx: np.ndarray) -> None:
        """Cut the windows of cells ``idx`` from one read of their bounding box, or, when the
        cells are too sparse for the box to pay (its area costs more than a read per cell),
        split the box into quarters and do the same for each (down to single cells)."""
        s = self.size
        x0, y0 = int(self.cx0[idx].min()), int(self.cy0[idx].min())
        w, h = int(self.cx1[idx].max()) - x0, int(self.cy1[idx].max()) - y0
        if not self.views and len(idx) > 1 and w * h > len(idx) * (s * s + _READ_OVERHEAD_PX):
            right = self.cx0[idx] >= x0 + w // 2
            below = self.cy0[idx] >= y0 + h // 2
            for quarter in (~right & ~below, right & ~below, ~right & below, right & below):
                if quarter.any():
                    self.group(idx[quarter])
            return
        region = self.source.read_region_shared(0, x0, y0, w, h)
        if not self.views and not region.flags.c_contiguous:
            # A decoder's view (e.g. RGB picked out of BGRA) would make the gather copy pixel
            # by pixel; one contiguous copy lets it move whole window rows instead (~8x faster).
            region = np.ascontiguousarray(region)
        pad = self.padded[idx]
        inside = idx[~pad]
        if len(inside):
            windows = _windows(region, s)
            ox, oy = self.ox[inside] - x0, self.oy[inside] - y0
            step = max(1, _CHUNK_BYTES // (s * s * 3))
            for k in range(0, len(inside), step):
                part = slice(k, k + step)
                self.store(inside[part], windows[oy[part], ox[part]])
        border = idx[pad]
        if len(border):
            # The window leaves the image: each pixel comes from the reflected position inside
            # the part that is in the image (crop_window's np.pad "reflect" on that part),
            # gathered for all border cells of the group at once.
            steps = np.arange(s)
            rows = _reflect(self.oy[border, None] + steps - self.cy0[border, None],
                            (self.cy1 - self.cy0)[border, None]) + (self.cy0[border, None] - y0)
            cols = _reflect(self.ox[border, None] + steps - self.cx0[border, None],
                            (self.cx1 - self.cx0)[border, None]) + (self.cx0[border, None] - x0)
            self.store(border, region[rows[:, :, None], cols[:, None, :]])


def _reflect(offset: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Index into a segment of length ``n`` for ``offset`` (may be < 0 or >= n), reflecting
    about the end pixels without repeating them, as ``np.pad(mode="reflect")`` does however far
    the pad reaches (period 2(n - 1); a segment of one pixel repeats it)."""
    period = np.maximum(2 * (n - 1), 1)
    m = np.mod(offset, period)
    return np.where(n == 1, 0, np.where(m < n, m, period - m))


def crop_patches(
    source: ImageSource,
    xy: np.ndarray,
    fov_px: float = PATCH_SIZE,
    *,
    fov_um: float | None = None,
    keep_source_crops: bool = False,
    region_px: int = DEFAULT_REGION_PX,
    workers: int | None = None,
    image: Any = None,
) -> CropResult:
    """Crop the 40x40 patch around every (x, y) level-0 point of ``source``.

    ``fov_um`` (microns, converted with ``source.mpp``) overrides ``fov_px``. ``workers``
    threads read regions in parallel (default: up to 4, one per core). ``image``: the
    project's record of the source's image (an ``ImageRecord``); when given, its file is first
    checked to still be that image (``cellviewer.core.sources.identity.check_image``: hashed
    once per file state, a stat afterwards) and the source to have its size, so a replaced file
    raises ``ImageChangedError`` instead of cropping other pixels under the old cells.
    """
    if image is not None:
        check_image(image)
        check_source(image, source)
    if fov_um is not None:
        fov_px = fov_px_from_um(fov_um, source.mpp, source.path)
    size = window_size(fov_px)
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(pts).all():
        raise ValueError(f"{source.path}: cell coordinates must be finite numbers")
    n = len(pts)
    patches = np.empty((n, PATCH_SIZE, PATCH_SIZE, 3), np.uint8)
    crops = None
    if keep_source_crops and size != PATCH_SIZE:
        crops = np.empty((n, size, size, 3), np.uint8)
    cropper = _Cropper(source, pts, size, patches, crops, max(int(region_px), 1))
    if cropper.missing.any():  # crop_window's rule for a window entirely off the image
        off = np.flatnonzero(cropper.missing)
        cropper.store(off, np.zeros((len(off), size, size, 3), np.uint8))
    groups = cropper.groups()
    workers = workers or min(4, os.cpu_count() or 1)
    if workers > 1 and len(groups) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(cropper.group, groups))  # list(): re-raise a worker's error here
    else:
        for g in groups:
            cropper.group(g)

    return CropResult(
        patches=patches, padded=cropper.padded, origins=np.stack([cropper.ox, cropper.oy], axis=1),
        window_px=size, fov_px=float(fov_px),
        source_crops=(patches if size == PATCH_SIZE else crops) if keep_source_crops else None,
    )


def crop_patch(source: ImageSource, x: float, y: float, fov_px: float = PATCH_SIZE
               ) -> tuple[np.ndarray, np.ndarray, bool]:
    """One cell: (40x40 patch, S x S source crop, padded). For a viewer's hover preview."""
    res = crop_patches(source, np.array([[x, y]]), fov_px, keep_source_crops=True, workers=1)
    assert res.source_crops is not None  # asked for with keep_source_crops
    return res.patches[0], res.source_crops[0], bool(res.padded[0])
