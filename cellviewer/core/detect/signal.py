"""The per-pixel signal a detector looks for peaks in, from an RGB tile, as float32.

- Nucleus mode: one channel of scikit-image's colour deconvolution (``skimage.color.rgb2hed``,
  Ruifrok & Johnston's H-E-DAB matrix): haematoxylin for H&E, DAB for IHC. The channel is
  computed exactly as ``rgb2hed(rgb)[..., k]`` does (same matrix, same 1e-6 guard, clipped at
  0), but through a 256-entry logarithm table and in float32: a tenth of the time, and only the
  one channel needed.
- Whole-cell mode: optical density against the image's own background colour, summed over the
  channels (``sum_c |log(I_c / bg_c)|``): cells darker than the background, or of another hue
  (pink red cells on a grey-blue smear), both stand out; the background itself is 0. Red cells
  are rings (a pale centre), so smoothing that density peaks on the rim, not the centre; the
  signal is instead the cells' *interior*: the pixels above a contrast level, the pale centres
  filled (holes smaller than a cell), and each pixel's distance to the background in radii
  (``scipy.ndimage.distance_transform_edt``), which peaks at the centre of each round cell and
  has a saddle between two touching ones.
"""

from __future__ import annotations

import numpy as np
from skimage.color import hed_from_rgb

STAIN_CHANNEL = {"hematoxylin": 0, "dab": 2}

# -log(v / 255) / -log(1e-6) for v = 0..255: rgb2hed's optical density per 8-bit value.
_OD_LUT = (np.log(np.maximum(np.arange(256) / 255.0, 1e-6)) / np.log(1e-6)).astype(np.float32)


def stain_density(rgb: np.ndarray, stain: str) -> np.ndarray:
    """(h, w) float32: ``rgb2hed(rgb)[..., channel]`` of an (h, w, 3) uint8 tile."""
    k = STAIN_CHANNEL[stain]
    m = hed_from_rgb[:, k].astype(np.float32)
    out = _OD_LUT[rgb[..., 0]] * m[0]
    out += _OD_LUT[rgb[..., 1]] * m[1]
    out += _OD_LUT[rgb[..., 2]] * m[2]
    np.maximum(out, 0.0, out=out)
    return out


def background_colour(rgb: np.ndarray) -> np.ndarray:
    """The background's RGB (3,) float32 of an image (a thumbnail is enough): the median colour
    of its brightest fifth. Cells and tissue absorb light, so the brightest pixels are glass or
    plasma; a fifth is robust to a few bright artefacts and to crowded smears."""
    rgb = np.asarray(rgb)
    step = max(1, -(-max(rgb.shape[:2]) // 256))  # about 256 px on the longer side is plenty
    px = rgb[::step, ::step].astype(np.float32).reshape(-1, 3)
    if len(px) == 0:
        return np.full(3, 255.0, np.float32)
    lum = px.sum(axis=1)
    bright = px[lum >= np.percentile(lum, 80)]
    return np.maximum(np.median(bright, axis=0), 1.0).astype(np.float32)


def contrast_density(rgb: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(h, w) float32: ``sum_c |ln(I_c / bg_c)|`` of an (h, w, 3) uint8 tile."""
    lut = np.log(np.maximum(np.arange(256, dtype=np.float32), 1.0))
    out = np.zeros(rgb.shape[:2], np.float32)
    for c in range(3):
        od = lut[rgb[..., c]]
        od -= np.float32(np.log(background[c]))
        np.abs(od, out=od)
        out += od
    return out


CELL_CONTRAST = 0.25  # summed optical density vs the background above which a pixel is a cell's


def cell_interior(rgb: np.ndarray, background: np.ndarray, radius: float) -> np.ndarray:
    """(h, w) float32: each cell pixel's distance to the background, in cell radii (``radius``
    in the tile's pixels); 0 on the background."""
    from scipy import ndimage

    cells = contrast_density(rgb, background) > CELL_CONTRAST
    # fill holes smaller than a cell (pale centres), not the background between cells
    holes, n = ndimage.label(~cells)
    if n:
        small = np.bincount(holes.ravel(), minlength=n + 1) <= np.pi * radius**2
        small[0] = False
        cells |= small[holes]
    return (ndimage.distance_transform_edt(cells) / radius).astype(np.float32)


def signal(rgb: np.ndarray, mode: str, stain: str, background: np.ndarray | None,
           radius: float = 1.0) -> np.ndarray:
    """The mode's signal of an RGB tile (whole-cell mode needs the ``background`` colour and
    the cells' ``radius`` in the tile's pixels)."""
    if mode == "nucleus":
        return stain_density(rgb, stain)
    if background is None:
        raise ValueError("whole-cell mode needs the background colour")
    return cell_interior(rgb, background, radius)
