"""The classical cell detector: no weights, scikit-image and SciPy only, Qt-free and torch-free.

>>> with open_image("slide.svs") as src:
...     found = detect(src, Area.box(0, 0, 2000, 2000), DetectParams(mode="nucleus"))
>>> found.x, found.y, found.score          # full-resolution pixels; found.unit: "um" or "px"

Modules: :mod:`.params` (what the user sets, the tuned defaults, the conversion to pixels),
:mod:`.signal` (stain or background contrast per pixel), :mod:`.peaks` (smoothing and local
maxima), :mod:`.area` (box and polygon), :mod:`.job` (tiling, levels, progress, cancel).
"""

from .area import Area
from .job import Detections, DetectProgress, detect, tissue_skipper
from .params import DEFAULTS, MODES, STAINS, DetectParams, Resolved, resolve

__all__ = ["DEFAULTS", "MODES", "STAINS", "Area", "DetectParams", "DetectProgress", "Detections",
           "Resolved", "detect", "resolve", "tissue_skipper"]
