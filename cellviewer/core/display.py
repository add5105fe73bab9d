"""How the slide is shown: brightness, contrast, gamma, and one stain's channel from colour
deconvolution (haematoxylin, eosin, DAB). For the eye only.

These settings change the pixels the viewer paints and nothing else: the patches a model is
given (:mod:`cellviewer.core.cells.crop`, the trainer's patch sets) are read from the image
source, never from the view, so a pathologist can brighten a pale IHC slide or look at the DAB
channel alone without changing a single prediction (``tests/cellviewer/ui/test_display.py``
checks the crops are unchanged).

Stain separation is Ruifrok & Johnston's colour deconvolution with the H-E-DAB stain matrix
scikit-image uses (``skimage.color.rgb_from_hed``), written here in numpy (two 3 × 3 matrices do
not justify the dependency): optical densities, times the inverse stain matrix, give each
stain's amount; one stain alone is drawn back in its own colour, as ``hed2rgb`` of that channel
would. The arithmetic is float32 with look-up tables, for the view's megapixels per repaint.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

CHANNELS = ("rgb", "hematoxylin", "eosin", "dab")
CHANNEL_NAMES = {"rgb": "Colour (RGB)", "hematoxylin": "Haematoxylin", "eosin": "Eosin",
                 "dab": "DAB"}

#: rows: the RGB optical density of one unit of haematoxylin, eosin, DAB (scikit-image's values)
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29],
                         [0.07, 0.99, 0.11],
                         [0.27, 0.57, 0.78]], dtype=np.float64)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
#: optical density of each 8-bit value: -log((v + 1) / 256), so 255 is (nearly) no stain
_OD = (-np.log((np.arange(256, dtype=np.float64) + 1.0) / 256.0)).astype(np.float32)

BRIGHTNESS_RANGE = (-1.0, 1.0)
CONTRAST_RANGE = (0.1, 4.0)
GAMMA_RANGE = (0.2, 5.0)


@dataclass(frozen=True)
class DisplaySettings:
    """``brightness`` is added (−1…1 of the full range), ``contrast`` multiplies around mid
    grey, ``gamma`` > 1 brightens the mid-tones, ``channel`` is one of :data:`CHANNELS`."""

    brightness: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0
    channel: str = "rgb"

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ValueError(f"display channel must be one of {CHANNELS}, not {self.channel!r}")
        for name, (low, high) in (("brightness", BRIGHTNESS_RANGE),
                                  ("contrast", CONTRAST_RANGE), ("gamma", GAMMA_RANGE)):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"display {name} must be within {low}…{high}, not {value}")

    @property
    def identity(self) -> bool:
        """True when the view shows the image's own pixels."""
        return self == DisplaySettings()

    def with_(self, **changes: object) -> DisplaySettings:
        return replace(self, **changes)  # type: ignore[arg-type]


def tone_lut(settings: DisplaySettings) -> np.ndarray:
    """The (256,) uint8 table brightness, contrast and gamma make of each 8-bit value."""
    v = np.arange(256, dtype=np.float64) / 255.0
    v = (v - 0.5) * settings.contrast + 0.5 + settings.brightness
    v = np.clip(v, 0.0, 1.0) ** (1.0 / settings.gamma)
    return np.round(v * 255.0).astype(np.uint8)


def stain_amounts(rgb: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 RGB → (h, w, 3) float32 amounts of haematoxylin, eosin, DAB (≥ 0)."""
    od = _OD[rgb[..., :3]]
    amounts = od.reshape(-1, 3) @ HED_FROM_RGB.astype(np.float32)
    return np.maximum(amounts, 0.0).reshape(rgb.shape[:-1] + (3,))


def single_stain(rgb: np.ndarray, channel: str) -> np.ndarray:
    """(h, w, 3) uint8: one stain alone, drawn in its own colour on white."""
    index = CHANNELS.index(channel) - 1
    amount = stain_amounts(rgb)[..., index]
    colour = RGB_FROM_HED[index].astype(np.float32)
    out = np.exp(-amount[..., None] * colour) * 256.0 - 1.0
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def adjust_rgb(rgb: np.ndarray, settings: DisplaySettings) -> np.ndarray:
    """The pixels as the view shows them: (h, w, 3) uint8 in, a new (h, w, 3) uint8 out."""
    if settings.identity:
        return rgb.copy()
    out = single_stain(rgb, settings.channel) if settings.channel != "rgb" else rgb[..., :3]
    return tone_lut(settings)[out]


def adjust_bgrx_inplace(pixels: np.ndarray, settings: DisplaySettings) -> None:
    """Adjust a (h, w, 4) uint8 B, G, R, X image (a Qt RGB32 image's memory) in place."""
    if settings.identity:
        return
    rgb = pixels[..., 2::-1]
    if settings.channel != "rgb":
        rgb = single_stain(np.ascontiguousarray(rgb), settings.channel)
    pixels[..., 2::-1] = tone_lut(settings)[rgb]


def magnification_zoom(objective: float, mpp: float | None,
                       reference_mpp_at_40x: float = 0.25) -> float | None:
    """The view zoom (screen pixels per image pixel) that shows the image as a microscope's
    ``objective`` (10, 20, 40) would, taking 40× as ``reference_mpp_at_40x`` µm per pixel
    (0.25, the scanners' usual value): at 20× a 0.25 µm/px slide is shown at zoom 0.5. None
    where the pixel size is not known."""
    if not mpp or mpp <= 0 or objective <= 0:
        return None
    return float(mpp) / (reference_mpp_at_40x * 40.0 / float(objective))
