"""What the user sets for a classical detection, and the same in working pixels.

The user sets a *mode* (nucleus or whole-cell), a *stain* (nucleus mode), the expected
*diameter* of what is detected (µm or pixels) and one *sensitivity* in [0, 1]. Everything else
(how much to smooth, how close two detections may be, the reference level of the score) is a
fraction of the diameter or a constant per mode, tuned once on training images
(``benchmarks/bench_detect.py --tune``) and fixed here.

Units: a diameter in µm needs the image's pixel size; where the file does not give one, the
detector falls back to the mode's default diameter in pixels (or the one the user gave in
pixels) and the result says so (:attr:`Resolved.unit`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

MODES = ("nucleus", "whole-cell")
STAINS = ("hematoxylin", "dab")


@dataclass(frozen=True)
class ModeDefaults:
    """One mode's tuned constants (fractions of the expected diameter unless said otherwise)."""

    diameter_um: float  # the expected diameter where the pixel size is known
    diameter_px: float  # ... where it is not (nuclei: 8 µm at 20x, 0.5 µm/px)
    sigma: float  # Gaussian smoothing sigma / diameter
    background_sigma: float  # sigma of the local background subtracted / diameter (0: none)
    min_distance: float  # closest two detections may be / diameter
    sensitivity: float  # the default sensitivity
    score_scale: float  # signal units per score unit: score = smoothed signal / score_scale
    working_diameter_px: float  # the image is reduced until the diameter is about this big


# Tuned on the training images only (benchmarks/bench_detect.py --tune): CRC's 70 train tiles
# (nucleus: sigma, min distance, working size; the operating point with the larger of the two
# margins to the goal, recall 0.72 and precision lower bound 0.51: train 0.744 /
# 0.527) and the 169 fully labelled images of the Chula training split (whole-cell: best F1,
# 0.81). score_scale puts each mode's tuned threshold at sensitivity 0.5.
DEFAULTS: dict[str, ModeDefaults] = {
    "nucleus": ModeDefaults(
        diameter_um=8.0, diameter_px=16.0, sigma=0.17, background_sigma=0.0,
        min_distance=0.25, sensitivity=0.5, score_scale=0.06, working_diameter_px=8.0,
    ),
    "whole-cell": ModeDefaults(
        diameter_um=7.5, diameter_px=45.0, sigma=0.06, background_sigma=0.0,
        min_distance=0.25, sensitivity=0.5, score_scale=0.7, working_diameter_px=12.0,
    ),
}


@dataclass(frozen=True)
class DetectParams:
    """A classical detection's settings. ``diameter`` None: the mode's default; ``unit``
    ``"um"`` or ``"px"``; ``sensitivity`` None: the mode's default (higher finds more)."""

    mode: str = "nucleus"
    stain: str = "hematoxylin"
    diameter: float | None = None
    unit: str = "um"
    sensitivity: float | None = None
    tile_size: int = 1024  # working pixels per tile side (the core; the halo comes on top)
    skip_background: bool = True  # skip tiles a thumbnail shows to be background (slides)
    workers: int = 2  # threads reading and detecting tiles at once
    # Overrides of the tuned constants, for tuning and experiments (None: the mode's default).
    sigma: float | None = None
    background_sigma: float | None = None
    min_distance: float | None = None
    working_diameter_px: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown detection mode {self.mode!r} (one of {', '.join(MODES)})")
        if self.stain not in STAINS:
            raise ValueError(f"unknown stain {self.stain!r} (one of {', '.join(STAINS)})")
        if self.unit not in ("um", "px"):
            raise ValueError(f"diameter unit must be 'um' or 'px', got {self.unit!r}")
        if self.diameter is not None and not (math.isfinite(self.diameter) and self.diameter > 0):
            raise ValueError(f"the diameter must be a positive number, got {self.diameter}")
        if self.sensitivity is not None and not 0.0 <= self.sensitivity <= 1.0:
            raise ValueError(f"the sensitivity must be between 0 and 1, got {self.sensitivity}")
        if self.tile_size < 32:
            raise ValueError(f"tiles must be at least 32 pixels, got {self.tile_size}")

    def with_(self, **changes: object) -> DetectParams:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Resolved:
    """The parameters in full-resolution pixels for one image, and how they were obtained."""

    mode: str
    stain: str
    diameter_px: float  # in full-resolution (level-0) pixels
    unit: str  # "um" (from the pixel size) or "px" (given in pixels, or no pixel size)
    note: str  # for people: where the diameter came from
    sensitivity: float
    sigma_px: float  # full-resolution pixels
    background_sigma_px: float
    min_distance_px: float
    score_scale: float
    working_downsample: float  # the wanted reduction (>= 1)

    @property
    def threshold(self) -> float:
        """The lowest score kept: ``1 - sensitivity``."""
        return 1.0 - self.sensitivity


def resolve(params: DetectParams, mpp: float | None) -> Resolved:
    """``params`` in full-resolution pixels for an image of ``mpp`` µm per pixel (None: not
    known, then a µm diameter cannot be converted and the mode's pixel default is used)."""
    d = DEFAULTS[params.mode]
    if params.unit == "px" and params.diameter is not None:
        diameter, unit, note = params.diameter, "px", f"diameter {params.diameter:g} px (given)"
    elif mpp:
        um = params.diameter if params.diameter is not None else d.diameter_um
        diameter, unit = um / mpp, "um"
        note = f"diameter {um:g} µm = {diameter:.1f} px at {mpp:.3g} µm/px"
    else:
        diameter, unit = d.diameter_px, "px"
        asked = (f"the {params.diameter:g} µm asked for cannot be converted, "
                 if params.diameter is not None else "")
        note = (f"pixel size unknown: {asked}default diameter {diameter:g} px used "
                "(give --diameter-px to set it)")
    sens = params.sensitivity if params.sensitivity is not None else d.sensitivity
    sigma = params.sigma if params.sigma is not None else d.sigma
    bg = params.background_sigma if params.background_sigma is not None else d.background_sigma
    md = params.min_distance if params.min_distance is not None else d.min_distance
    wd = params.working_diameter_px or d.working_diameter_px
    return Resolved(
        mode=params.mode, stain=params.stain, diameter_px=float(diameter), unit=unit, note=note,
        sensitivity=float(sens), sigma_px=sigma * diameter, background_sigma_px=bg * diameter,
        min_distance_px=md * diameter, score_scale=d.score_scale,
        working_downsample=max(1.0, diameter / wd),
    )
