"""The classical detector on generated images, a committed Chula crop and the committed SVS:
where it finds cells, units, tiling (no seam duplicates, same as untiled), polygons, pyramid
levels, progress and cancellation."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree
from skimage.color import rgb2hed

from cellviewer.core.detect import Area, DetectParams, detect, resolve
from cellviewer.core.detect.signal import stain_density
from cellviewer.core.sources import ArraySource, open_image

REPO = Path(__file__).resolve().parents[4]
SVS = REPO / "resources/demo/slides/CMU-1-Small-Region.svs"
CHULA = REPO / "tests/fixtures/chula"

HEMATOXYLIN_RGB = (70, 50, 140)  # a nucleus' purple
DAB_RGB = (150, 90, 40)  # a DAB-positive nucleus' brown


def blobs(size: tuple[int, int], centres: np.ndarray, radius: float,
          colour: tuple[int, int, int] = HEMATOXYLIN_RGB) -> np.ndarray:
    """A white (h, w, 3) image with filled discs of ``colour``, anti-aliased a little."""
    h, w = size
    cover = np.zeros((h, w), np.float32)
    r = int(np.ceil(radius)) + 2
    for cx, cy in centres:
        x0, y0 = max(0, int(cx) - r), max(0, int(cy) - r)
        x1, y1 = min(w, int(cx) + r + 1), min(h, int(cy) + r + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        disc = np.clip(radius + 0.5 - np.hypot(xx - cx, yy - cy), 0, 1)
        np.maximum(cover[y0:y1, x0:x1], disc, out=cover[y0:y1, x0:x1])
    white = np.full(3, 255.0)
    rgb = white + cover[..., None] * (np.asarray(colour, float) - white)
    return np.round(rgb).astype(np.uint8)


def grid_centres(h: int, w: int, step: float, rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.mgrid[step / 2:h - step / 2:step, step / 2:w - step / 2:step]
    jitter = rng.uniform(-step / 5, step / 5, (xs.size, 2))
    return np.column_stack([xs.ravel(), ys.ravel()]) + jitter


def nearest(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return cKDTree(truth).query(found)[0]


def test_stain_density_is_rgb2hed_channel():
    rgb = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    hed = rgb2hed(rgb)
    np.testing.assert_allclose(stain_density(rgb, "hematoxylin"), hed[..., 0], atol=1e-5)
    np.testing.assert_allclose(stain_density(rgb, "dab"), hed[..., 2], atol=1e-5)


def test_synthetic_nuclei_found_at_their_centres():
    rng = np.random.default_rng(1)
    truth = grid_centres(300, 400, 40.0, rng)
    src = ArraySource(blobs((300, 400), truth, 8.0))
    found = detect(src, params=DetectParams(diameter=16, unit="px"))
    assert len(found) == len(truth)
    assert nearest(found.xy(), truth).max() < 1.0  # sub-pixel although read at half size
    assert found.downsample == 2.0 and found.unit == "px"
    assert found.score.min() >= 1.0 - found.params.sensitivity


def test_dab_mode_finds_brown_nuclei_and_hematoxylin_mode_does_not():
    rng = np.random.default_rng(2)
    truth = grid_centres(200, 200, 40.0, rng)
    src = ArraySource(blobs((200, 200), truth, 8.0, DAB_RGB))
    dab = detect(src, params=DetectParams(stain="dab", diameter=16, unit="px"))
    assert len(dab) == len(truth) and nearest(dab.xy(), truth).max() < 1.0
    # brown has a little haematoxylin in the deconvolution, far from a nucleus' worth
    assert len(detect(src, params=DetectParams(stain="hematoxylin", diameter=16, unit="px"))) \
        < len(truth) // 4


def test_sensitivity_is_the_one_control_higher_finds_more():
    rng = np.random.default_rng(3)
    truth = grid_centres(240, 240, 40.0, rng)
    rgb = blobs((240, 240), truth, 8.0)
    faint = (255 - (255 - rgb.astype(int)) * np.linspace(0.15, 1, 240)[None, :, None])
    src = ArraySource(faint.astype(np.uint8))
    counts = [len(detect(src, params=DetectParams(diameter=16, unit="px", sensitivity=s)))
              for s in (0.1, 0.5, 0.9)]
    assert counts[0] < counts[1] < counts[2] <= len(truth)


def test_units_um_where_the_pixel_size_is_known_pixels_otherwise():
    with_mpp = resolve(DetectParams(diameter=8.0), mpp=0.25)
    assert with_mpp.unit == "um" and with_mpp.diameter_px == pytest.approx(32.0)
    without = resolve(DetectParams(diameter=8.0), mpp=None)
    assert without.unit == "px" and without.diameter_px == 16.0
    assert "pixel size unknown" in without.note and "cannot be converted" in without.note
    given_px = resolve(DetectParams(diameter=20.0, unit="px"), mpp=0.25)
    assert given_px.unit == "px" and given_px.diameter_px == 20.0
    with pytest.raises(ValueError, match="sensitivity"):
        DetectParams(sensitivity=1.5)
    with pytest.raises(ValueError, match="mode"):
        DetectParams(mode="membrane")


def test_whole_cell_mode_on_a_chula_crop():
    from PIL import Image

    rgb = np.asarray(Image.open(CHULA / "chula-10-crop.png").convert("RGB"))
    with open(CHULA / "chula-10-crop.csv", newline="") as fh:
        truth = np.array([(float(r["x"]), float(r["y"])) for r in csv.DictReader(fh)])
    found = detect(ArraySource(rgb), params=DetectParams(mode="whole-cell"))
    h, w = rgb.shape[:2]

    def inner(xy: np.ndarray) -> np.ndarray:  # at least a cell's radius inside the crop
        return (xy[:, 0] > 22) & (xy[:, 0] < w - 22) & (xy[:, 1] > 22) & (xy[:, 1] < h - 22)

    # every red cell of the image is labelled; cells the crop cuts in half need not be found
    recall = float((cKDTree(found.xy()).query(truth[inner(truth)])[0] <= 12).mean())
    precision = float((nearest(found.xy()[inner(found.xy())], truth) <= 12).mean())
    assert recall >= 0.9 and precision >= 0.9, (recall, precision, len(found), len(truth))
    assert found.unit == "px" and found.params.diameter_px == 45.0


def test_tiled_svs_equals_untiled_without_seam_duplicates():
    """256-px tiles (working pixels, so seams every 512 level-0 pixels) against one tile."""
    area = Area.box(300, 400, 1400, 1200)
    with open_image(SVS) as src:
        assert src.mpp is not None
        tiled = detect(src, area, DetectParams(tile_size=256))
        whole = detect(src, area, DetectParams(tile_size=4096))
    assert whole.tiles_total == 1 and tiled.tiles_total == 3 * 3
    assert len(tiled) == len(whole) > 300
    d, idx = cKDTree(whole.xy()).query(tiled.xy())
    assert d.max() <= 1.0
    assert len(set(idx.tolist())) == len(whole)  # one-to-one: no duplicate at a seam
    np.testing.assert_allclose(np.sort(tiled.score), np.sort(whole.score), atol=1e-4)
    pairs = cKDTree(tiled.xy()).query_pairs(r=found_spacing(tiled))
    assert not pairs


def found_spacing(found) -> float:
    """Just under the minimum distance two detections may be apart (full-res pixels)."""
    return 0.9 * found.params.min_distance_px


def test_polygon_area_keeps_the_detections_inside():
    rng = np.random.default_rng(4)
    truth = grid_centres(400, 400, 40.0, rng)
    src = ArraySource(blobs((400, 400), truth, 8.0))
    params = DetectParams(diameter=16, unit="px")
    triangle = np.array([[20.0, 20.0], [380.0, 20.0], [20.0, 380.0]])
    inside = detect(src, Area.from_polygon(triangle), params)
    everything = detect(src, None, params)
    expected = truth[truth[:, 0] + truth[:, 1] < 400]
    assert 0 < len(inside) < len(everything)
    assert (inside.x + inside.y < 400).all()
    # the cells well inside the triangle are all found
    well_inside = expected[(expected.sum(axis=1) < 370) & (expected.min(axis=1) > 30)]
    assert (cKDTree(inside.xy()).query(well_inside)[0] < 1.0).all()


def test_big_cells_are_read_from_a_coarser_pyramid_level():
    rng = np.random.default_rng(5)
    truth = grid_centres(1600, 1600, 160.0, rng)
    src = ArraySource(blobs((1600, 1600), truth, 32.0))  # levels 800, 400, 200 px
    found = detect(src, params=DetectParams(diameter=64, unit="px", tile_size=128))
    # 8 working px per diameter wanted: a reduction by 8, the 400-px level halved again
    assert found.level == 2 and found.downsample == pytest.approx(8.0, rel=0.01)
    assert len(found) == len(truth)
    assert nearest(found.xy(), truth).max() < 2.0


def test_progress_and_cancel_between_tiles():
    rng = np.random.default_rng(6)
    truth = grid_centres(600, 600, 40.0, rng)
    src = ArraySource(blobs((600, 600), truth, 8.0))
    params = DetectParams(diameter=16, unit="px", tile_size=64)  # 300 working px: 5 x 5 tiles
    reports = []
    full = detect(src, params=params, progress=reports.append)
    assert [r.tiles_done for r in reports] == list(range(1, 26))
    assert reports[-1].fraction == pytest.approx(1.0) and reports[-1].cells == len(full)
    assert np.all(np.diff([r.fraction for r in reports]) > 0)
    assert not full.partial and len(full) == len(truth)

    for workers in (1, 2):
        seen: list[int] = []
        partial = detect(src, params=params.with_(workers=workers),
                         progress=lambda p, seen=seen: seen.append(p.cells),
                         cancelled=lambda seen=seen: len(seen) >= 7)
        # checked before each tile starts: the tiles already under way (one per other
        # worker and one queued) are finished and kept
        assert partial.partial and 7 <= partial.tiles_done <= 7 + workers
        assert partial.tiles_done == len(seen) and partial.tiles_total == 25
        assert 0 < len(partial) == seen[-1] < len(full)
        # what a cancelled run returns is exactly what the full run found in those tiles
        assert (cKDTree(full.xy()).query(partial.xy())[0] < 1e-9).all()
        assert f"cancelled after {partial.tiles_done} of 25 tiles" in partial.notes


def test_background_tiles_of_a_sparse_image_are_skipped_and_lose_nothing():
    rng = np.random.default_rng(7)
    truth = grid_centres(200, 200, 40.0, rng) + 800  # one cluster in a corner of glass
    src = ArraySource(blobs((1024, 1024), truth, 8.0))
    params = DetectParams(diameter=16, unit="px", tile_size=64)
    skipping = detect(src, params=params)
    reading = detect(src, params=params.with_(skip_background=False))
    assert skipping.tiles_skipped > skipping.tiles_total // 2 and reading.tiles_skipped == 0
    assert len(skipping) == len(reading) == len(truth)
