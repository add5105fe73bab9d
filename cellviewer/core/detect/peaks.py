"""Peaks of a smoothed signal: the cell centres of one tile, in the tile's working pixels.

Smoothing with a Gaussian about the size of the object turns each nucleus (or red cell, pale
centre and all) into one hill whose top is its centre; a wider Gaussian subtracted (optional)
removes slowly varying background, such as stroma that takes some haematoxylin. Peaks are
``skimage.feature.peak_local_max`` with a minimum distance (maxima of a square neighbourhood of
that radius) above the threshold, refined to sub-pixel by a parabola through the peak and its
neighbours on each axis: the image may have been reduced by 2 or more, and the refinement gives
back most of the lost precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.feature import peak_local_max

GAUSS_TRUNCATE = 3.0  # the kernel reaches 3 sigma (the halo of each tile must cover it)


def smooth(signal: np.ndarray, sigma: float, background_sigma: float) -> np.ndarray:
    """The signal smoothed at ``sigma``, less its smoothing at ``background_sigma`` (if > 0)."""
    out = ndimage.gaussian_filter(signal, sigma, truncate=GAUSS_TRUNCATE, mode="nearest")
    if background_sigma > 0:
        out -= ndimage.gaussian_filter(signal, background_sigma, truncate=GAUSS_TRUNCATE,
                                       mode="nearest")
    return out


def reach(sigma: float, background_sigma: float, min_distance: int) -> int:
    """How far (working pixels) the value at one pixel depends on the pixels around it: the
    halo a tile needs so its core's peaks equal an untiled run's."""
    return int(np.ceil(GAUSS_TRUNCATE * max(sigma, background_sigma))) + min_distance + 2


@dataclass
class Peaks:
    """Local maxima: their pixel (``rows``, ``cols``, int), the sub-pixel offsets in [-0.5, 0.5]
    (``dr``, ``dc``) and the smoothed signal there (``values``)."""

    rows: np.ndarray
    cols: np.ndarray
    dr: np.ndarray
    dc: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, keep: np.ndarray) -> Peaks:
        return Peaks(self.rows[keep], self.cols[keep], self.dr[keep], self.dc[keep],
                     self.values[keep])


def find_peaks(smoothed: np.ndarray, min_distance: int, threshold: float) -> Peaks:
    """Local maxima of ``smoothed`` at least ``min_distance`` apart and above ``threshold``.

    The maxima of a (2 min_distance + 1)-square footprint are what ``peak_local_max`` finds
    with that ``min_distance``; passing the footprint instead skips its general spacing pass
    (a k-d tree over every peak, a third of the detector's time), and only the twins of a
    plateau, which that pass would thin, are thinned here."""
    size = 2 * max(1, min_distance) + 1
    found = peak_local_max(smoothed, min_distance=1, footprint=np.ones((size, size), bool),
                           threshold_abs=threshold, exclude_border=False)
    found = _without_plateau_twins(found, max(1, min_distance))
    r, c = found[:, 0].astype(np.int64), found[:, 1].astype(np.int64)
    return Peaks(r, c, _offset(smoothed, r, c, axis=0), _offset(smoothed, r, c, axis=1),
                 smoothed[r, c].astype(np.float32))


def _without_plateau_twins(found: np.ndarray, min_distance: int) -> np.ndarray:
    """Peaks closer than ``min_distance`` (Chebyshev) are equal maxima of one plateau: keep the
    first in row-major order (a rule that does not depend on where a tile starts)."""
    if len(found) < 2:
        return found
    pairs = cKDTree(found).query_pairs(r=min_distance, p=np.inf, output_type="ndarray")
    if len(pairs) == 0:
        return found
    order = found[:, 0] * (found[:, 1].max() + 1) + found[:, 1]
    later = np.where(order[pairs[:, 0]] > order[pairs[:, 1]], pairs[:, 0], pairs[:, 1])
    keep = np.ones(len(found), bool)
    keep[later] = False
    return found[keep]


def _offset(f: np.ndarray, r: np.ndarray, c: np.ndarray, axis: int) -> np.ndarray:
    """The parabola's vertex offset in [-0.5, 0.5] along ``axis`` (0 at the array's edge)."""
    n = f.shape[axis]
    pos = r if axis == 0 else c
    lo, hi = np.maximum(pos - 1, 0), np.minimum(pos + 1, n - 1)
    if axis == 0:
        fm, f0, fp = f[lo, c], f[r, c], f[hi, c]
    else:
        fm, f0, fp = f[r, lo], f[r, c], f[r, hi]
    fm, f0, fp = (a.astype(np.float64) for a in (fm, f0, fp))
    curvature = fm - 2.0 * f0 + fp
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(curvature < 0, 0.5 * (fm - fp) / curvature, 0.0)
    off[(pos == 0) | (pos == n - 1)] = 0.0
    return np.clip(off, -0.5, 0.5)
