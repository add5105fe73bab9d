"""The study's Gaussian blur of patches, shared by the trainer's robustness measure and the
desktop app's blur preview (NumPy and PIL only, no torch).

PIL's ``ImageFilter.GaussianBlur`` (its ``radius`` is the standard deviation) at the study's
sigmas, in two modes:

- **post-resize** ("post"): sigma applied to the 40x40 patch;
- **pre-resize** ("pre"): sigma x S0 / 40 applied to the source crop (S0 x S0, the field of
  view before resizing), then resized to 40x40 with the patch set's own resize
  (:func:`trainer.formats.patchset.resize_to_patch`).
"""

from __future__ import annotations

import numpy as np

from trainer.formats.patchset import resize_to_patch

SIGMAS = (0.1, 0.2, 0.4, 0.8, 1.6)
MODES = ("post", "pre")


def blur_patches(patches_u8: np.ndarray, sigma: float) -> np.ndarray:
    """(N, H, W, 3) uint8 -> the same, each image blurred by PIL's GaussianBlur(sigma)."""
    from PIL import Image, ImageFilter

    patches_u8 = np.asarray(patches_u8)
    if sigma <= 0:
        return patches_u8
    flt = ImageFilter.GaussianBlur(radius=float(sigma))
    out = np.empty_like(patches_u8)
    for i in range(len(patches_u8)):
        out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(patches_u8[i])).filter(flt))
    return out


def blur_pre_resize(source_crops: np.ndarray, sigma: float, size: int = 40) -> np.ndarray:
    """Source crops (N, S0, S0, 3) blurred with sigma x S0 / 40, then resized to 40x40."""
    source_crops = np.asarray(source_crops)
    s0 = source_crops.shape[1]
    blurred = blur_patches(source_crops, sigma * s0 / size)
    out = np.empty((len(blurred), size, size, 3), dtype=np.uint8)
    for i in range(len(blurred)):
        out[i] = resize_to_patch(blurred[i], size)
    return out


def blur_for_mode(patches_u8: np.ndarray, sigma: float, mode: str = "post",
                  source_crops: np.ndarray | None = None) -> np.ndarray:
    """The blurred 40x40 patches for ``mode`` ("post" or "pre"; "pre" needs source crops)."""
    if mode == "post":
        return blur_patches(patches_u8, sigma)
    if mode == "pre":
        if source_crops is None:
            raise ValueError("pre-resize blur needs the source crops (the patch set has none)")
        if len(source_crops) != len(patches_u8):
            raise ValueError(f"{len(patches_u8)} patches but {len(source_crops)} source crops")
        if sigma <= 0:
            return np.asarray(patches_u8)
        return blur_pre_resize(source_crops, sigma)
    raise ValueError(f"blur mode must be 'post' or 'pre', not {mode!r}")
