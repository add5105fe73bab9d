"""The detector's training data: fully annotated areas (an image, or a rectangle or polygon of
it, with every cell centre inside marked), turned into heatmap targets and loss weights at the
working resolution, and random training crops of them.

Where the data comes from:

- a points table (``image, x, y``, read by the shared reader ``trainer.formats.tables``) whose
  images are fully annotated: each image is one area (:func:`areas_from_points`);
- a regions file (:func:`read_regions`): the project's fully annotated regions, each an image,
  a rectangle or polygon and the points inside it; everything in the region that is not near a
  point is background, everything outside it is ignored.

Targets (CenterNet's): a Gaussian of sigma = diameter / 4 around each centre (the maximum where
two overlap), 1 at the centre's own pixel. Loss weights: 1 inside the area, 0 outside (outside
a region, nothing is known). Partial labels (``partial_labels``; CRC labels about 75 % of its
nuclei): the weight is also 0 farther than ``ignore_beyond`` diameters from every label. Why:
an unlabelled nucleus far from any label would otherwise be taught as background, and the
unlabelled quarter looks exactly like the labelled rest; near a label, what lies between cells
is known to be background, so the model still learns where a cell ends. Unlabelled nuclei
next to labelled ones are still called background (the rule cannot tell them apart); the
threshold chosen on validation tiles makes up part of that.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainer.detect.model import normalise
from trainer.formats.errors import TrainerError
from trainer.formats.protocol import ErrorKind


class DetectorDataError(TrainerError):
    """Training data that cannot be used: the message names the file and the cause."""

    kind = ErrorKind.BAD_PATCHSET


@dataclass
class Area:
    """A fully annotated area: an image file, the cell centres (N, 2; x, y in full-resolution
    pixels) and its outline (a polygon (M, 2) in full-resolution pixels; None: the whole
    image)."""

    image: Path
    points: np.ndarray
    polygon: np.ndarray | None = None
    name: str = ""

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
        if self.polygon is not None:
            self.polygon = np.asarray(self.polygon, dtype=np.float64).reshape(-1, 2)
        if not self.name:
            self.name = self.image.name


def box_polygon(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """A rectangle as a polygon."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def points_inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """The mask of the points inside ``polygon`` (its boundary counts as inside)."""
    from skimage.measure import points_in_poly

    if len(points) == 0:
        return np.zeros(0, bool)
    return np.asarray(points_in_poly(points, polygon), bool)


# ---- sources ----------------------------------------------------------------------------------
def areas_from_points(points_csv: str | os.PathLike, images: str | os.PathLike | None = None,
                      image_list: list[str] | None = None) -> list[Area]:
    """One area per image of a points table (any layout :func:`trainer.formats.tables.
    read_table` recognises with an image column); ``images``: the folder the image names are
    relative to (default: the table's folder); ``image_list``: the fully annotated images to
    use (default: every image of the table). An image of the list without rows is an area
    with no cells (all background)."""
    from trainer.formats.cell_rows import CellFileError
    from trainer.formats.tables import read_table

    path = Path(points_csv)
    try:
        parsed = read_table(path)
    except CellFileError as exc:
        raise DetectorDataError(str(exc)) from exc
    if parsed.units != "px":
        raise DetectorDataError(f"{path}: coordinates in µm; the detector needs pixels")
    by_image: dict[str, list[tuple[float, float]]] = {}
    for row in parsed.rows:
        if row.image is None:
            raise DetectorDataError(f"{path}: the table has no image column")
        by_image.setdefault(row.image, []).append((row.x, row.y))
    names = list(image_list) if image_list is not None else list(by_image)
    if not names:
        raise DetectorDataError(f"{path}: no images to train on")
    folder = Path(images) if images is not None else path.parent
    out = []
    for name in names:
        img = folder / name
        if not img.is_file():
            raise DetectorDataError(f"{path}: image {name!r} not found in {folder}")
        out.append(Area(img, np.array(by_image.get(name, []), dtype=np.float64), None, name))
    return out


def read_regions(path: str | os.PathLike) -> list[Area]:
    """Fully annotated regions from a JSON file::

        {"regions": [{"image": "slide.png", "name": "r1",
                      "polygon": [[x, y], ...]          # or "box": [x0, y0, x1, y1]
                                                        # or "geometry": a GeoJSON Polygon
                      "points": [[x, y], ...]}, ...]}

    in full-resolution pixels; ``image`` relative to the file's folder. Points outside their
    polygon are dropped (a region's cells are the ones inside it)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise DetectorDataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except json.JSONDecodeError as exc:
        raise DetectorDataError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") \
            from exc
    items = data.get("regions") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise DetectorDataError(f"{path}: expected {{\"regions\": [...]}} with at least one "
                                "region")
    out = []
    for i, item in enumerate(items):
        where = f"{path}, region {i + 1}"
        if not isinstance(item, dict) or not isinstance(item.get("image"), str):
            raise DetectorDataError(f"{where}: needs an \"image\"")
        polygon = _region_polygon(where, item)
        try:
            pts = np.asarray(item.get("points", []), dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            raise DetectorDataError(f"{where}: \"points\" must be a list of [x, y]") from None
        if not np.isfinite(pts).all():
            raise DetectorDataError(f"{where}: a point is not a finite number")
        pts = pts[points_inside(pts, polygon)]
        img = path.parent / item["image"]
        if not img.is_file():
            raise DetectorDataError(f"{where}: image {item['image']!r} not found in "
                                    f"{path.parent}")
        out.append(Area(img, pts, polygon, str(item.get("name") or f"{img.name}#{i + 1}")))
    return out


def _region_polygon(where: str, item: dict) -> np.ndarray:
    try:
        if "box" in item:
            x0, y0, x1, y1 = (float(v) for v in item["box"])
            poly = box_polygon(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        elif "polygon" in item:
            poly = np.asarray(item["polygon"], dtype=np.float64).reshape(-1, 2)
        elif isinstance(item.get("geometry"), dict) and \
                item["geometry"].get("type") == "Polygon":
            poly = np.asarray(item["geometry"]["coordinates"][0], dtype=np.float64)
        else:
            raise DetectorDataError(f"{where}: needs a \"box\", a \"polygon\" or a GeoJSON "
                                    "Polygon \"geometry\"")
    except (TypeError, ValueError, IndexError, KeyError):
        raise DetectorDataError(f"{where}: its outline is not a list of [x, y]") from None
    if len(poly) < 3 or not np.isfinite(poly).all():
        raise DetectorDataError(f"{where}: an outline needs at least 3 finite points")
    return poly


# ---- working resolution -------------------------------------------------------------------------
def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise DetectorDataError(f"{path}: cannot read the image ({exc})") from exc


def reduce_rgb(rgb: np.ndarray, factor: int) -> np.ndarray:
    """The image at 1/``factor`` (box average of each factor x factor block, partial blocks
    at the right and bottom averaged over what they hold): training and inference reduce the
    same way."""
    if factor == 1:
        return rgb
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).reduce(factor))


def to_work(xy: np.ndarray, factor: int) -> np.ndarray:
    """Full-resolution pixel coordinates -> working ones (pixel centres map to centres)."""
    return (np.asarray(xy, dtype=np.float64) + 0.5) / factor - 0.5


def to_full(xy: np.ndarray, factor: int) -> np.ndarray:
    return (np.asarray(xy, dtype=np.float64) + 0.5) * factor - 0.5


def heatmap_target(shape: tuple[int, int], centres: np.ndarray, sigma: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(Gaussian heatmap float32, centre-pixel mask bool) of ``shape`` for working-pixel
    ``centres``: each Gaussian drawn in a window of 3 sigma."""
    h, w = shape
    heat = np.zeros(shape, np.float32)
    pos = np.zeros(shape, bool)
    r = int(np.ceil(3 * sigma))
    for cx, cy in centres:
        ix, iy = int(round(cx)), int(round(cy))
        x0, x1, y0, y1 = max(ix - r, 0), min(ix + r + 1, w), max(iy - r, 0), min(iy + r + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        xs = np.arange(x0, x1) - cx
        ys = np.arange(y0, y1) - cy
        g = np.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma ** 2)).astype(np.float32)
        np.maximum(heat[y0:y1, x0:x1], g, out=heat[y0:y1, x0:x1])
        if 0 <= ix < w and 0 <= iy < h:
            pos[iy, ix] = True
    heat[pos] = 1.0
    return heat, pos


@dataclass
class Prepared:
    """One area at the working resolution: the normalised image (3, H, W), the target (H, W),
    the centre pixels, the loss weight (H, W) and the bounding box (x0, y0, x1, y1) of the
    weighted pixels that crops are drawn around."""

    name: str
    image: np.ndarray
    target: np.ndarray
    pos: np.ndarray
    weight: np.ndarray
    box: tuple[int, int, int, int]
    centres: np.ndarray  # working px, the area's points
    rgb_work: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    @property
    def n_weighted(self) -> int:
        return int((self.weight > 0).sum())


def prepare(area: Area, factor: int, diameter_px: float, partial_labels: bool = False,
            ignore_beyond: float = 1.0, cache: dict | None = None,
            unstained_is_background: bool = False) -> Prepared:
    """The area at 1/``factor``: image, target (sigma = diameter / 4), weight.
    ``unstained_is_background``: with partial labels, ignore far from every label only what
    :func:`maybe_nucleus` says could be a nucleus."""
    from scipy import ndimage
    from skimage.draw import polygon as fill_polygon

    key = (str(area.image), factor)
    if cache is not None and key in cache:
        rgb = cache[key]
    else:
        rgb = reduce_rgb(read_rgb(area.image), factor)
        if cache is not None:
            cache[key] = rgb
    h, w = rgb.shape[:2]
    d_work = diameter_px / factor
    centres = to_work(area.points, factor)
    target, pos = heatmap_target((h, w), centres, sigma=d_work / 4)
    if area.polygon is None:
        weight = np.ones((h, w), np.float32)
    else:
        poly = to_work(area.polygon, factor)
        weight = np.zeros((h, w), np.float32)
        rr, cc = fill_polygon(poly[:, 1], poly[:, 0], shape=(h, w))
        weight[rr, cc] = 1.0
    if partial_labels:
        if len(centres):
            seeds = np.ones((h, w), bool)
            ij = np.clip(np.round(centres[:, ::-1]).astype(int), 0, [h - 1, w - 1])
            seeds[ij[:, 0], ij[:, 1]] = False
            far = ndimage.distance_transform_edt(seeds) > ignore_beyond * d_work
            if unstained_is_background:
                far &= maybe_nucleus(rgb, centres, d_work)
            weight[far] = 0.0
        else:
            weight[:] = 0.0  # no label at all: nothing is known there
    ys, xs = np.nonzero(weight)
    if len(xs) == 0:
        raise DetectorDataError(f"{area.name}: the area holds no pixel of its image (or, with "
                                "partial labels, no label)")
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return Prepared(area.name, normalise(rgb), target, pos, weight, box, centres, rgb)


def maybe_nucleus(rgb: np.ndarray, centres: np.ndarray, diameter: float) -> np.ndarray:
    """Where an (H, W, 3) uint8 image could hold a nucleus: its haematoxylin (scikit-image's
    ``rgb2hed``, smoothed at a quarter diameter) at least the 5th percentile of that at the
    labelled ``centres`` (working px), grown by a quarter diameter. Why the labels' own
    level: stain strength differs from slide to slide, and 95 % of the nuclei the annotators
    marked say what a nucleus looks like on this one; red cells, stroma and lumen lie below."""
    from scipy import ndimage
    from skimage.color import rgb2hed

    h = ndimage.gaussian_filter(rgb2hed(rgb)[..., 0], max(diameter / 4, 0.5))
    ij = np.clip(np.round(centres[:, ::-1]).astype(int), 0, [h.shape[0] - 1, h.shape[1] - 1])
    level = np.percentile(h[ij[:, 0], ij[:, 1]], 5)
    return np.asarray(ndimage.distance_transform_edt(h < level) <= max(1.0, diameter / 4),
                      bool)


# ---- training crops ----------------------------------------------------------------------------
class CropSampler:
    """Random crops (``size`` working px) of the prepared areas, each area drawn in proportion
    to its weighted pixels, the crop placed anywhere it overlaps the area's box; what falls
    outside the image is zero (grey) with weight 0. With ``augment``: one of the 8 rotations
    and flips, brightness/contrast jitter of up to 10 % and, where ``stain_jitter`` > 0, HED
    stain jitter of that strength (``trainer.data.stain_jitter``'s, on the image's pixels only:
    the grey outside it stays the grey that inference pads with)."""

    def __init__(self, areas: list[Prepared], size: int, seed: int, augment: bool = True,
                 stain_jitter: float = 0.0) -> None:
        self.areas, self.size, self.augment = areas, size, augment
        self.stain_jitter = stain_jitter
        # its own generator: turning the jitter on leaves the crops and flips as they were
        self.stain_rng = np.random.default_rng([seed, 4099])
        n = np.array([a.n_weighted for a in areas], np.float64)
        self.p = n / n.sum()
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(images (n, 3, s, s), targets (n, 1, s, s), centre masks, weights)."""
        s = self.size
        imgs = np.zeros((n, 3, s, s), np.float32)
        tgts = np.zeros((n, 1, s, s), np.float32)
        poss = np.zeros((n, 1, s, s), np.float32)
        wts = np.zeros((n, 1, s, s), np.float32)
        inside = np.zeros((n, s, s), bool)
        for i in range(n):
            a = self.areas[self.rng.choice(len(self.areas), p=self.p)]
            x0, y0, x1, y1 = a.box
            # the crop's centre anywhere in the area's box
            cx = int(self.rng.integers(x0, x1)) - s // 2
            cy = int(self.rng.integers(y0, y1)) - s // 2
            h, w = a.target.shape
            sx0, sy0 = max(cx, 0), max(cy, 0)
            sx1, sy1 = min(cx + s, w), min(cy + s, h)
            if sx0 >= sx1 or sy0 >= sy1:
                continue
            dst = (slice(sy0 - cy, sy1 - cy), slice(sx0 - cx, sx1 - cx))
            src = (slice(sy0, sy1), slice(sx0, sx1))
            imgs[i][(slice(None), *dst)] = a.image[(slice(None), *src)]
            inside[i][dst] = True
            tgts[i, 0][dst] = a.target[src]
            poss[i, 0][dst] = a.pos[src]
            wts[i, 0][dst] = a.weight[src]
        if self.augment:
            if self.stain_jitter > 0:
                self._jitter_stains(imgs, inside)
            self._augment(imgs, tgts, poss, wts)
        return imgs, tgts, poss, wts

    def _jitter_stains(self, imgs: np.ndarray, inside: np.ndarray) -> None:
        from trainer.data.stain_jitter import HED_FROM_RGB, MIN_INTENSITY, RGB_FROM_HED

        st = self.stain_jitter
        for i in range(len(imgs)):
            alpha = self.stain_rng.uniform(1 - st, 1 + st, 3)
            beta = self.stain_rng.uniform(-st, st, 3)
            rgb = np.clip((imgs[i] * 64.0 + 127.5) / 255.0, MIN_INTENSITY, 1.0)
            stains = np.einsum("chw,cd->dhw", -np.log(rgb), HED_FROM_RGB)
            stains = stains * alpha[:, None, None] + beta[:, None, None]
            out = np.clip(np.exp(-np.einsum("dhw,dc->chw", stains, RGB_FROM_HED)), 0, 1)
            work = ((out * 255.0 - 127.5) / 64.0).astype(np.float32)
            imgs[i] = np.where(inside[i][None], work, imgs[i])

    def _augment(self, *arrays: np.ndarray) -> None:
        imgs = arrays[0]
        for i in range(len(imgs)):
            k, flip = int(self.rng.integers(4)), bool(self.rng.integers(2))
            for arr in arrays:
                view = np.rot90(arr[i], k, axes=(1, 2))
                if flip:
                    view = view[:, :, ::-1]
                arr[i] = view.copy()
            gain = 1 + self.rng.uniform(-0.1, 0.1)
            shift = self.rng.uniform(-0.2, 0.2)
            imgs[i] = imgs[i] * gain + shift
