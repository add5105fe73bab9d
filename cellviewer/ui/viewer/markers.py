"""Cell markers: how the cells of one image are drawn, in batches.

:class:`MarkerLayer` is a view over the open image's cells (``cellviewer.core.cells.image_cells``:
``ids``, ``xy`` level-0 pixels, ``class_id`` with -1 for unlabelled, predictions) with a
:class:`~cellviewer.core.cells.spatial.GridIndex` so the view asks only for the markers inside the
visible rectangle. Drawing never loops in Python: markers are
pre-rendered sprites (one small pixmap per colour and style) blitted with one
``QPainter.drawPixmapFragments`` call per colour from a numpy array of positions. When more
markers are visible than there are screen pixels for them (a whole slide with 500,000 cells),
:func:`paint_markers` draws a class map instead (each small screen square takes the colour of one
of its cells) or, less crowded, keeps one sprite per colour and screen bucket; so the cost follows
the screen size, not the cell count. The view caches the result as an overlay image and renders
it again only when the zoom, the cells or the style change, or a pan leaves its margin.

A detector's proposals (``ImageCells.proposed``) are drawn *hollow* until a person accepts
them: a thin dashed ring in their colour, whatever the marker style, so they stand apart from
verified cells at every zoom (:data:`PROPOSED_STYLE`).

Colour modes: ``"label"`` (the cell's class colour), ``"prediction"`` (the predicted class's
colour, from the active model's predictions) and ``"agreement"`` (green where label and
prediction agree, red where they differ, grey where either is missing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shiboken6
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen, QPixmap

from cellviewer.core.cells.image_cells import ImageCells
from cellviewer.core.cells.spatial import GridIndex
from cellviewer.core.store import CellColumns

COLOR_MODES = ("label", "prediction", "agreement")
MARKER_STYLES = ("circle", "dot", "cross", "square")
UNLABELLED_COLOUR = "#ffffff"
NO_PREDICTION_COLOUR = "#9e9e9e"
AGREE_COLOUR = "#2ecc40"
DISAGREE_COLOUR = "#ff2d2d"
DEDUPE_ABOVE = 20_000  # visible markers beyond which one per screen bucket is drawn
CROWDED = 2.0  # markers covering their area this many times over become a class map
DENSITY_ALPHA = 235
PROPOSED_STYLE = "hollow"  # how proposals are drawn (a dashed ring)
PROPOSAL_COLOUR = "#ffb300"  # a proposal with no class (an accepted one turns white)


@dataclass
class ClassStyle:
    id: int
    name: str
    color: str
    key: str = ""


class MarkerLayer:
    """How the cells of the image on screen are drawn: a view over an
    :class:`~cellviewer.core.cells.image_cells.ImageCells` (the one source of truth), adding only
    what drawing needs: colours by mode, hidden classes, the spatial index, and an optional
    override of predicted classes (the blur preview applied to the visible cells). It follows
    the model's events and calls ``on_change()`` (the view repaints)."""

    def __init__(self, cells: ImageCells | None = None) -> None:
        self.cells = cells if cells is not None else ImageCells()
        self.width = 1
        self.height = 1
        self.classes: list[ClassStyle] = []
        self.hidden: set[int] = set()
        self.mode = "label"
        self.version = 0  # bumps on every change that alters what is drawn
        self.on_change = lambda: None
        self._index: GridIndex | None = None
        self._expected_index: GridIndex | None = None
        self._colour_key: np.ndarray | None = None
        self._visible: np.ndarray | None = None
        self._override: np.ndarray | None = None  # predicted class per cell, -1: none
        self._override_ids: dict[str, int] | None = None
        ev = self.cells.events
        ev.reset.connect(self._on_structure)
        ev.inserted.connect(lambda _i: self._on_structure())
        ev.removed.connect(lambda _i, _ids: self._on_structure())
        ev.changed.connect(self._on_changed)
        ev.predictions.connect(lambda _i: self._on_colours())

    # --- the model's columns ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.cells)

    @property
    def ids(self) -> np.ndarray:
        return self.cells.ids

    @property
    def xy(self) -> np.ndarray:
        return self.cells.xy

    @property
    def class_id(self) -> np.ndarray:
        return self.cells.class_id

    @property
    def pred_class(self) -> np.ndarray:
        """Predicted project class per cell (-1: none; the override where set)."""
        if self._override is None:
            return self.cells.pred_class
        return np.where(self._override >= 0, self._override, self.cells.pred_class)

    @property
    def proposed(self) -> np.ndarray:
        """True where a cell is a detector's proposal not yet accepted (drawn hollow)."""
        return self.cells.proposed

    @property
    def pred_conf(self) -> np.ndarray:
        """The active model's confidence per cell (NaN: no prediction)."""
        return self.cells.confidence

    def rows_of(self, ids) -> np.ndarray:
        """Row of each id in the arrays (-1 where unknown)."""
        return self.cells.indices_of(ids)

    # --- loading without a project (a standalone view, tests, benchmarks) -------------------
    def set_cells(self, ids, xy, class_id, width: int, height: int,
                  index: GridIndex | None = None) -> None:
        """Show these cells (a model of their own: no project behind them)."""
        n = len(ids)
        cid = np.asarray(class_id if class_id is not None and len(class_id) else
                         np.full(n, -1), dtype=np.int64)
        cols = CellColumns(
            np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=object),
            np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64),
            np.asarray(xy, dtype=np.float64).reshape(-1, 2).copy(), cid.copy(),
            np.zeros(n, dtype=np.int8), np.zeros(n, dtype=np.int8),
            np.full(n, -1, dtype=np.int64), np.full(n, np.nan, dtype=np.float32),
            np.zeros(n, dtype=bool))
        self.set_extent(width, height)
        self.cells.replace(cols)
        self.set_index(index)

    def set_extent(self, width: int, height: int) -> None:
        self.width, self.height = int(width), int(height)
        if self._index is not None and self._index.extent != (self.width, self.height):
            # (an index made for this extent stays: the image opening after its cells arrived
            # must not make the next paint rebuild it on the GUI thread)
            self._index = None

    def set_index(self, index: GridIndex | None) -> None:
        """Adopt an index built elsewhere (by the worker that loaded the cells)."""
        if index is not None and len(index) == len(self.cells):
            self._index = index

    def expect_index(self, index: GridIndex | None) -> None:
        """An index the worker built for the cells about to arrive: adopted by the reset that
        brings them (listeners of that reset may query the layer before the loader's callback
        could call :meth:`set_index`)."""
        self._expected_index = index

    # --- drawing options ---------------------------------------------------------------------
    def set_classes(self, classes: list[ClassStyle]) -> None:
        self.classes = list(classes)
        self._on_colours()

    def set_hidden(self, hidden: set[int]) -> None:
        self.hidden = set(hidden)
        self._visible = None
        self.version += 1
        self.on_change()

    def set_mode(self, mode: str) -> None:
        if mode not in COLOR_MODES:
            raise ValueError(f"colour mode must be one of {COLOR_MODES}, not {mode!r}")
        self.mode = mode
        self._on_colours()

    def set_prediction_override(self, ids, classes) -> None:
        """Colour these cells by ``classes`` instead of the model's stored call (None: stop)."""
        if ids is None:
            self._override = None
        else:
            over = np.full(len(self.cells), -1, dtype=np.int64)
            at = self.cells.indices_of(ids)
            ok = at >= 0
            over[at[ok]] = np.asarray(classes, dtype=np.int64)[ok]
            self._override = over
        self._on_colours()

    # --- following the model ---------------------------------------------------------------
    def _on_structure(self) -> None:
        expected, self._expected_index = self._expected_index, None
        self._index = expected if expected is not None and len(expected) == len(self.cells) \
            else None
        self._override = None  # positions moved: an override would point at other cells
        self._on_colours()

    def _on_changed(self, _indices, fields) -> None:
        if "xy" in fields:
            self._index = None
        self._on_colours()

    def _on_colours(self) -> None:
        self._colour_key = None
        self._visible = None
        self.version += 1
        self.on_change()

    # --- derived ---------------------------------------------------------------------------
    @property
    def index(self) -> GridIndex:
        if self._index is None:
            self._index = GridIndex(self.xy, self.width, self.height)
        return self._index

    def palette(self) -> list[QColor]:
        """The colour table that :meth:`colour_keys` indexes."""
        if self.mode == "agreement":
            return [QColor(NO_PREDICTION_COLOUR), QColor(AGREE_COLOUR), QColor(DISAGREE_COLOUR)]
        first = UNLABELLED_COLOUR if self.mode == "label" else NO_PREDICTION_COLOUR
        return [QColor(first)] + [QColor(c.color) for c in self.classes]

    def _lut(self, values: np.ndarray) -> np.ndarray:
        """Class ids -> palette index (0 for none/unknown)."""
        top = max([c.id for c in self.classes] + [0, int(values.max(initial=0))]) + 2
        lut = np.zeros(top, dtype=np.int32)
        for i, c in enumerate(self.classes):
            if c.id >= 0:
                lut[c.id] = i + 1
        return lut[np.where(values >= 0, values, top - 1)]

    def colour_keys(self) -> np.ndarray:
        if self._colour_key is None:
            if self.mode == "label":
                self._colour_key = self._lut(self.class_id)
            elif self.mode == "prediction":
                self._colour_key = self._lut(self.pred_class)
            else:
                pred = self.pred_class
                key = np.where(self.class_id == pred, 1, 2).astype(np.int32)
                key[(self.class_id < 0) | (pred < 0)] = 0
                self._colour_key = key
        return self._colour_key

    def visible_mask(self) -> np.ndarray:
        if self._visible is None:
            if self.hidden:
                self._visible = ~np.isin(self.class_id, np.fromiter(self.hidden, np.int64))
            else:
                self._visible = np.ones(len(self.ids), dtype=bool)
        return self._visible

    def query(self, x0: float, y0: float, x1: float, y1: float,
              exact: bool = True) -> np.ndarray:
        """Rows of the visible (not hidden) markers inside a level-0 rectangle (``exact=False``:
        and some just outside it, see :meth:`GridIndex.query`)."""
        rows = self.index.query(x0, y0, x1, y1, exact)
        if self.hidden and len(rows):
            rows = rows[self.visible_mask()[rows]]
        return rows

    def nearest(self, x: float, y: float, radius: float) -> int:
        mask = self.visible_mask() if self.hidden else None
        return self.index.nearest(x, y, radius, mask)

    def counts_by_class(self) -> dict[int, int]:
        values, counts = np.unique(self.class_id, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


# --- drawing ---------------------------------------------------------------------------------
_SPRITES: dict[tuple, QPixmap] = {}


def marker_sprite(style: str, size: int, colour: QColor, dpr: float = 1.0,
                  outline: float = 1.0) -> QPixmap:
    """A marker drawn once (antialiased, with a dark rim so it reads on pale and dark stain);
    ``outline`` scales its line width (the Display panel's "outline")."""
    key = (style, int(size), colour.rgba(), float(dpr), float(outline))
    pm = _SPRITES.get(key)
    if pm is not None:
        return pm
    size = max(2, int(size))
    side = size + 4
    pm = QPixmap(int(math.ceil(side * dpr)), int(math.ceil(side * dpr)))
    pm.setDevicePixelRatio(dpr)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    c = side / 2.0
    r = size / 2.0
    path = QPainterPath()
    if style == PROPOSED_STYLE:  # a proposal: a dashed ring, no fill
        path.addEllipse(QPointF(c, c), r, r)
        width = max(1.0, size / 10.0) * outline
        p.setBrush(Qt.BrushStyle.NoBrush)
        rim = QPen(QColor(0, 0, 0, 170), width + 1.4, Qt.PenStyle.DashLine)
        rim.setDashPattern([2.5, 1.5])
        p.setPen(rim)
        p.drawPath(path)
        line = QPen(colour, width, Qt.PenStyle.DashLine)
        line.setDashPattern([2.5 * (width + 1.4) / width, 1.5 * (width + 1.4) / width])
        p.setPen(line)
        p.drawPath(path)
    elif style == "dot":
        path.addEllipse(QPointF(c, c), r * 0.6, r * 0.6)
        p.setPen(QPen(QColor(0, 0, 0, 200), 1.0))
        p.setBrush(colour)
        p.drawPath(path)
    else:
        if style == "square":
            path.addRect(QRectF(c - r, c - r, 2 * r, 2 * r))
        elif style == "cross":
            path.moveTo(c - r, c)
            path.lineTo(c + r, c)
            path.moveTo(c, c - r)
            path.lineTo(c, c + r)
        else:  # circle
            path.addEllipse(QPointF(c, c), r, r)
        width = max(1.2, size / 8.0) * outline
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(QColor(0, 0, 0, 170), width + 1.6))
        p.drawPath(path)
        p.setPen(QPen(colour, width))
        p.drawPath(path)
    p.end()
    if len(_SPRITES) > 512:
        _SPRITES.clear()
    _SPRITES[key] = pm
    return pm


def draw_sprites(painter: QPainter, sprite: QPixmap, xs: np.ndarray, ys: np.ndarray) -> None:
    """Blit ``sprite`` centred on every (x, y) with one native call (no Python loop)."""
    n = len(xs)
    if n == 0:
        return
    dpr = sprite.devicePixelRatio()
    frags = np.empty((n, 10), dtype=np.float64)
    frags[:, 0] = xs
    frags[:, 1] = ys
    frags[:, 2:6] = (0.0, 0.0, sprite.width(), sprite.height())  # source rect, device px
    frags[:, 6:10] = (1.0 / dpr, 1.0 / dpr, 0.0, 1.0)  # scale x/y, rotation, opacity
    ptr = shiboken6.wrapInstance(frags.ctypes.data, QPainter.PixmapFragment)
    painter.drawPixmapFragments(ptr, n, sprite)


def paint_markers(
    painter: QPainter,
    layer: MarkerLayer,
    rows: np.ndarray,
    zoom: float,
    ox: float,
    oy: float,
    style: str = "circle",
    size: int = 10,
    dpr: float = 1.0,
    outline: float = 1.0,
    none_colour: QColor | None = None,
) -> int:
    """Draw markers ``rows`` at screen (x*zoom - ox, y*zoom - oy); returns how many marks went
    on screen.

    Above :data:`DEDUPE_ABOVE` markers the screen, not the cell count, sets the cost: where the
    markers would cover their area many times over (a whole slide of cells), they become a class
    map (:func:`paint_density`); otherwise one sprite per colour and screen bucket (half a
    marker wide) is kept, since a crowd of identical overlapping sprites looks the same.
    """
    if len(rows) == 0:
        return 0
    proposed = getattr(layer, "proposed", None)
    if style != PROPOSED_STYLE and proposed is not None and len(proposed) == len(layer):
        hollow = proposed[rows]
        if hollow.any():  # proposals apart, as hollow rings (at least 8 px to read as one)
            return (paint_markers(painter, layer, rows[~hollow], zoom, ox, oy, style, size,
                                  dpr, outline)
                    + paint_markers(painter, layer, rows[hollow], zoom, ox, oy,
                                    PROPOSED_STYLE, max(size, 8), dpr, outline,
                                    QColor(PROPOSAL_COLOUR)))
    if len(rows) == len(layer) and rows[0] == 0 and rows[-1] == len(rows) - 1:
        sx, sy = layer.xy[:, 0] * zoom - ox, layer.xy[:, 1] * zoom - oy  # no gather
        keys = layer.colour_keys()
    else:
        sx = layer.xy[rows, 0] * zoom - ox
        sy = layer.xy[rows, 1] * zoom - oy
        keys = layer.colour_keys()[rows]
    palette = layer.palette()
    if none_colour is not None:  # proposals without a class: amber, not the white of a cell
        palette = [none_colour, *palette[1:]]
    if len(rows) > DEDUPE_ABOVE:
        area = max(1.0, float(np.ptp(sx)) * float(np.ptp(sy)))
        if len(rows) * size * size > CROWDED * area:
            return paint_density(painter, sx, sy, keys, palette, max(2, size // 2))
        bucket = max(1.0, size / 2.0)
        gx = np.floor(sx / bucket).astype(np.int64)
        gy = np.floor(sy / bucket).astype(np.int64)
        gx -= gx.min()
        gy -= gy.min()
        gw, gh = int(gx.max()) + 1, int(gy.max()) + 1
        n_keys = int(keys.max()) + 1
        flat = (keys.astype(np.int64) * gh + gy) * gw + gx
        if n_keys * gw * gh <= 64_000_000:
            seen = np.zeros(n_keys * gw * gh, dtype=bool)
            seen[flat] = True
            flat = np.flatnonzero(seen)
        else:
            flat = np.unique(flat)
        gx, rest = flat % gw, flat // gw
        gy, keys = rest % gh, rest // gh
        x_off = np.floor(sx.min() / bucket)
        y_off = np.floor(sy.min() / bucket)
        sx = (gx + x_off + 0.5) * bucket
        sy = (gy + y_off + 0.5) * bucket
    drawn = 0
    present = np.bincount(keys, minlength=len(palette))
    for k in np.flatnonzero(present):
        sel = keys == k
        colour = palette[k] if k < len(palette) else QColor(UNLABELLED_COLOUR)
        draw_sprites(painter, marker_sprite(style, size, colour, dpr, outline), sx[sel],
                     sy[sel])
        drawn += int(present[k])
    return drawn


def paint_density(painter: QPainter, sx: np.ndarray, sy: np.ndarray, keys: np.ndarray,
                  palette: list[QColor], bucket: int) -> int:
    """A class map: each ``bucket``-pixel square holding cells takes the colour of one of them.

    Built in numpy (one scatter into a small grid, one colour lookup) and drawn as one image
    scaled up without smoothing: about 10 ms for 500,000 cells, whatever the style.
    """
    gx = np.floor(sx / bucket).astype(np.int64)
    gy = np.floor(sy / bucket).astype(np.int64)
    x0, y0 = int(gx.min()), int(gy.min())
    gx -= x0
    gy -= y0
    gw, gh = int(gx.max()) + 1, int(gy.max()) + 1
    grid = np.zeros((gh, gw), dtype=np.uint16)
    grid[gy, gx] = keys.astype(np.uint16) + 1
    lut = np.zeros((len(palette) + 1, 4), dtype=np.uint8)
    for i, c in enumerate(palette):
        lut[i + 1] = (c.red(), c.green(), c.blue(), DENSITY_ALPHA)
    rgba = np.ascontiguousarray(lut[np.minimum(grid, len(palette))])
    img = QImage(rgba.data, gw, gh, 4 * gw, QImage.Format.Format_RGBA8888)
    hint = painter.testRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
    painter.drawImage(QRectF(x0 * bucket, y0 * bucket, gw * bucket, gh * bucket), img)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, hint)
    return int(np.count_nonzero(grid))
