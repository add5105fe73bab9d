"""``detect(source, area, params)``: the classical detector over a region, the visible area, an
image or a whole slide, tile by tile, with progress and cancellation. Qt-free: the app runs it
in a worker (``ui/common/tasks.py``), the command line and the benchmarks call it directly.

Resolution: the expected diameter sets how far the image may be reduced without losing cells
(about ``working_diameter_px`` pixels per diameter is enough to find a blob). A slide is read
at the pyramid level closest to that (never coarser), and the read is further reduced by a
whole factor with a box filter (Pillow's ``reduce``) when the level is still much finer; a
20x or 40x slide with nothing coarser enough is read at level 0. All output is in level-0
pixels.

Tiles: the area is cut, in working pixels, into ``tile_size`` squares (the *cores*); each is
read with a halo as wide as the smoothing and the peak neighbourhood reach
(:func:`.peaks.reach`), so every value in a core equals the untiled one, and a peak is kept only
by the tile whose core holds its pixel: no duplicate at a seam, nothing lost there. Pixels
outside the image read as white (nothing to detect). Cancellation is checked between tiles; a
cancelled run returns what its finished tiles found, marked ``partial``.

Background tiles of a slide (white glass, by a thumbnail) are skipped when
``params.skip_background``: they hold nothing to detect and are most of a slide's area. The
thumbnail is made only where the pyramid has a level at least 4x coarser (a slide with only
level 0 would be decoded twice: there every tile is read).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from cellviewer.core.sources.base import ImageSource

from .area import Area
from .params import DetectParams, Resolved, resolve
from .peaks import Peaks, find_peaks, reach, smooth
from .signal import background_colour, contrast_density, signal

THUMBNAIL_SIZE = 1024  # for the background colour and the tissue mask
TISSUE_OD = 0.15  # summed optical density (vs the background) above which a pixel is not glass


@dataclass
class DetectProgress:
    """Reported after each tile."""

    cells: int  # found so far
    tiles_done: int
    tiles_total: int
    megapixels_done: float  # full-resolution megapixels of the area covered so far
    megapixels_total: float
    elapsed_s: float

    @property
    def fraction(self) -> float:
        return self.megapixels_done / self.megapixels_total if self.megapixels_total else 1.0

    @property
    def megapixels_per_s(self) -> float:
        return self.megapixels_done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def cells_per_s(self) -> float:
        return self.cells / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class Detections:
    """Detected centres in full-resolution (level-0) pixels, and how they were found."""

    x: np.ndarray  # (N,) float64
    y: np.ndarray  # (N,) float64
    score: np.ndarray  # (N,) float32: smoothed signal / the mode's scale; kept >= 1 - sensitivity
    params: Resolved
    partial: bool = False  # cancelled: only the tiles done are in it
    level: int = 0  # the pyramid level read
    downsample: float = 1.0  # level-0 pixels per working pixel
    tiles_done: int = 0
    tiles_total: int = 0
    tiles_skipped: int = 0  # background tiles not read
    megapixels: float = 0.0  # of the area, full resolution
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def unit(self) -> str:
        """``"um"`` when the diameter came from the pixel size, ``"px"`` otherwise."""
        return self.params.unit

    @property
    def megapixels_per_s(self) -> float:
        return self.megapixels / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def xy(self) -> np.ndarray:
        return np.column_stack([self.x, self.y])


@dataclass(frozen=True)
class _Plan:
    level: int
    factor: int  # whole reduction of the level's pixels
    downsample: float  # level-0 pixels per working pixel
    sigma: float  # working pixels
    background_sigma: float
    min_distance: int
    halo: int
    radius: float  # the expected cell radius in working pixels


def _plan(source: ImageSource, res: Resolved) -> _Plan:
    level = source.best_level_for_downsample(res.working_downsample)
    level_ds = float(source.level_downsamples[level])
    factor = max(1, math.floor(res.working_downsample / level_ds + 1e-6))
    ds = level_ds * factor
    sigma, bg = res.sigma_px / ds, res.background_sigma_px / ds
    md = max(1, round(res.min_distance_px / ds))
    radius = res.diameter_px / 2 / ds
    halo = reach(sigma, bg, md)
    if res.mode == "whole-cell":  # the distance to the background reaches a cell's diameter
        halo += math.ceil(2 * radius)
    return _Plan(level, factor, ds, sigma, bg, md, halo, radius)


def _read_working(source: ImageSource, plan: _Plan, c0: int, r0: int, c1: int, r1: int
                  ) -> np.ndarray:
    """Working pixels [r0, r1) x [c0, c1) as (h, w, 3) uint8 (white outside the image)."""
    f = plan.factor
    rgb = source.read_region(plan.level, c0 * f, r0 * f, (c1 - c0) * f, (r1 - r0) * f)
    if f > 1:
        rgb = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).reduce(f))
    return rgb


def _thumbnail(source: ImageSource, area: Area) -> tuple[np.ndarray, float]:
    """The area as an RGB image of at most THUMBNAIL_SIZE px, and its level-0 px per pixel."""
    scale = max(1.0, max(area.width, area.height) / THUMBNAIL_SIZE)
    level = source.best_level_for_downsample(scale)
    ds = float(source.level_downsamples[level])
    x0, y0 = math.floor(area.x0 / ds), math.floor(area.y0 / ds)
    w, h = max(1, math.ceil(area.x1 / ds) - x0), max(1, math.ceil(area.y1 / ds) - y0)
    rgb = source.read_region(level, x0, y0, w, h)
    k = math.floor(scale / ds + 1e-6)
    if k > 1:
        rgb = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).reduce(k))
        ds *= k
    return rgb, ds


def _cheap_thumbnail(source: ImageSource, area: Area) -> bool:
    """Whether a thumbnail costs much less than the detection's own reads: the pyramid has a
    level at least 4x coarser to make it from (a slide with only level 0 would be decoded
    twice). In-memory images make their levels cheaply, so they always do."""
    scale = max(area.width, area.height) / THUMBNAIL_SIZE
    level = source.best_level_for_downsample(max(1.0, scale))
    return float(source.level_downsamples[level]) >= min(4.0, scale)


def _tissue_mask(thumb: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Thumbnail pixels that are not plain background, grown by two pixels (a margin for cells
    too faint to show in the thumbnail)."""
    mask = contrast_density(thumb, background) > TISSUE_OD
    return ndimage.binary_dilation(mask, iterations=2)


def tissue_skipper(source: ImageSource, area: Area | None = None
                   ) -> Callable[[int, int, int, int], bool] | None:
    """For a trained detector's tiles (``skip(x, y, w, h)`` in level-0 pixels): True where the
    box holds no tissue by the classical detector's rule (a thumbnail's pixels whose optical
    density against white is above ``TISSUE_OD``, grown by two thumbnail pixels), so plain
    glass is never read or run through the network. None where a thumbnail would cost about
    as much as reading the image itself (no coarser pyramid level)."""
    full = Area.whole(source.width, source.height)
    area = (area or full).clipped(source.width, source.height)
    if area is None or not _cheap_thumbnail(source, area):
        return None
    thumb, thumb_ds = _thumbnail(source, area)
    mask = _tissue_mask(thumb, np.full(3, 255.0, np.float32))

    def skip(x: int, y: int, w: int, h: int) -> bool:
        return not _has_tissue(mask, thumb_ds, area, 1.0, (x, y, x + w, y + h))

    return skip


def detect(
    source: ImageSource,
    area: Area | None = None,
    params: DetectParams | None = None,
    progress: Callable[[DetectProgress], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    *,
    background: np.ndarray | None = None,
) -> Detections:
    """Detect cells in ``area`` of ``source`` (the whole image when None).

    ``progress`` is called after each tile; ``cancelled`` (e.g. ``event.is_set``) is checked
    before each: once true, the run stops and returns what it found, ``partial=True``.
    ``background``: the background RGB for whole-cell mode (else estimated from a thumbnail).
    Raises :class:`~cellviewer.core.sources.ImageReadError` when the image cannot be read."""
    t0 = time.monotonic()
    params = params or DetectParams()
    res = resolve(params, source.mpp)
    full = Area.whole(source.width, source.height)
    area = (area or full).clipped(source.width, source.height)
    plan = _plan(source, res)
    empty = np.zeros(0, np.float64)
    result = Detections(empty, empty.copy(), np.zeros(0, np.float32), res, level=plan.level,
                        downsample=plan.downsample, notes=[res.note])
    if area is None:
        result.notes.append("the area lies outside the image")
        return result

    ts = params.tile_size
    c0, r0, c1, r1 = area.working_box(plan.downsample)
    cores = [(x, y, min(x + ts, c1), min(y + ts, r1))
             for y in range(r0, r1, ts) for x in range(c0, c1, ts)]
    use_mask = params.skip_background and len(cores) > 1 and _cheap_thumbnail(source, area)
    need_thumb = (res.mode == "whole-cell" and background is None) or use_mask
    thumb, thumb_ds, mask = None, 1.0, None
    if need_thumb:
        thumb, thumb_ds = _thumbnail(source, area)
    if background is None:
        background = (background_colour(thumb) if res.mode == "whole-cell" and thumb is not None
                      else np.full(3, 255.0, np.float32))
    if use_mask and thumb is not None:
        mask = _tissue_mask(thumb, background)

    result.tiles_total = len(cores)
    result.megapixels = area.megapixels
    h = plan.halo

    def one_tile(core: tuple[int, int, int, int]) -> _TileResult | None:
        """The detections a tile's core owns (None: a background tile, not read)."""
        x0, y0, x1, y1 = core
        if mask is not None and not _has_tissue(mask, thumb_ds, area, plan.downsample,
                                                (x0 - h, y0 - h, x1 + h, y1 + h)):
            return None
        rgb = _read_working(source, plan, x0 - h, y0 - h, x1 + h, y1 + h)
        sm = smooth(signal(rgb, res.mode, res.stain, background, plan.radius), plan.sigma,
                    plan.background_sigma)
        peaks = _owned(find_peaks(sm, plan.min_distance, res.threshold * res.score_scale),
                       h, x1 - x0, y1 - y0)
        x = (x0 - h + peaks.cols + peaks.dc + 0.5) * plan.downsample - 0.5
        y = (y0 - h + peaks.rows + peaks.dr + 0.5) * plan.downsample - 0.5
        inside = area.contains(x, y)
        return x[inside], y[inside], peaks.values[inside] / res.score_scale

    found: list[_TileResult] = []
    n_found, done_px = 0, 0.0
    total_px = float(sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in cores))
    for core, tile in _in_order(one_tile, cores, params.workers, cancelled):
        if tile is None:
            result.tiles_skipped += 1
        else:
            found.append(tile)
            n_found += len(tile[0])
        result.tiles_done += 1
        done_px += (core[2] - core[0]) * (core[3] - core[1])
        if progress is not None:
            progress(DetectProgress(n_found, result.tiles_done, len(cores),
                                    area.megapixels * done_px / total_px, area.megapixels,
                                    time.monotonic() - t0))
    result.partial = result.tiles_done < len(cores)
    if found:
        result.x = np.concatenate([f[0] for f in found])
        result.y = np.concatenate([f[1] for f in found])
        result.score = np.concatenate([f[2] for f in found]).astype(np.float32)
    result.elapsed_s = time.monotonic() - t0
    if result.partial:
        result.notes.append(f"cancelled after {result.tiles_done} of {len(cores)} tiles")
    return result


_TileResult = tuple[np.ndarray, np.ndarray, np.ndarray]
_Core = tuple[int, int, int, int]


def _in_order(work: Callable[[_Core], _TileResult | None], cores: list[_Core], workers: int,
              cancelled: Callable[[], bool] | None
              ) -> Iterator[tuple[_Core, _TileResult | None]]:
    """``work`` on each core, in order, on ``workers`` threads (reading, filtering and peak
    finding release the GIL, so two cores nearly halve a slide's time). ``cancelled`` is
    checked before each tile is started; the tiles already started are finished and given."""
    if workers <= 1 or len(cores) == 1:
        for core in cores:
            if cancelled is not None and cancelled():
                return
            yield core, work(core)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="detect") as pool:
        pending: deque[tuple[_Core, Future[_TileResult | None]]] = deque()
        todo = iter(cores)
        stopped = False
        while True:
            while not stopped and len(pending) < workers + 1:
                nxt = next(todo, None)
                if nxt is None:
                    break
                if cancelled is not None and cancelled():
                    stopped = True
                    break
                pending.append((nxt, pool.submit(work, nxt)))
            if not pending:
                return
            core, future = pending.popleft()
            yield core, future.result()


def _owned(peaks: Peaks, halo: int, core_w: int, core_h: int) -> Peaks:
    """The peaks whose pixel lies in the tile's core (each seam pixel has one owner)."""
    keep = ((peaks.rows >= halo) & (peaks.rows < halo + core_h)
            & (peaks.cols >= halo) & (peaks.cols < halo + core_w))
    return peaks.take(keep)


def _has_tissue(mask: np.ndarray, thumb_ds: float, area: Area, ds: float,
                box: tuple[int, int, int, int]) -> bool:
    """Whether the tissue mask has any pixel under a tile's box (working pixels)."""
    tx0 = math.floor((box[0] * ds - area.x0) / thumb_ds)
    ty0 = math.floor((box[1] * ds - area.y0) / thumb_ds)
    tx1 = math.ceil((box[2] * ds - area.x0) / thumb_ds)
    ty1 = math.ceil((box[3] * ds - area.y0) / thumb_ds)
    sub = mask[max(0, ty0):max(0, ty1), max(0, tx0):max(0, tx1)]
    return bool(sub.any())
