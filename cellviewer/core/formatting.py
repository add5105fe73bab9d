"""How the app writes numbers for people: durations, in one place.

Qt-free, so the model panel, the training monitor and the training dialog show a duration the
same way and a script can too.
"""

from __future__ import annotations

import math

NO_DURATION = "–"  # what an unknown duration (None, NaN, negative) shows


def format_duration(seconds: float | None) -> str:
    """A duration in words, to the second under an hour, to the minute above: "45 s",
    "3 min 05 s", "2 h 07 min". Unknown (None, NaN, inf, negative): "–"."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return NO_DURATION
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def format_clock(seconds: float | None) -> str:
    """A duration as a clock, for a figure that ticks every second and must not change width
    while it does: "0:45", "3:05", "2:07:09". Unknown: "–"."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return NO_DURATION
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_length(pixels: float, mpp: float | None) -> str:
    """A distance measured on an image, for people: in µm (mm above 1,000 µm) with the pixels
    beside it where the pixel size is known ("12.5 µm · 50 px"), else in pixels, saying why
    ("50 px (no pixel size)"). Pixels are level-0 (full-resolution) pixels."""
    if not math.isfinite(pixels) or pixels < 0:
        return NO_DURATION
    px = f"{pixels:,.0f} px" if pixels >= 10 else f"{pixels:.1f} px"
    if not mpp or not math.isfinite(mpp) or mpp <= 0:
        return f"{px} (no pixel size)"
    um = pixels * mpp
    if um >= 1000:
        return f"{um / 1000:.2f} mm · {px}"
    return f"{um:.1f} µm · {px}" if um >= 10 else f"{um:.2f} µm · {px}"
