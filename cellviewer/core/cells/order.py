"""One vocabulary for the orders in which cells are shown: the gallery, the review queue and the
store's queries all name an order with these words.

- ``slide``: the image's own order: additions in the order they were made, the cells of one
  addition in reading order (256-px tiles row by row, then y, then x: store.cells.spatial_order);
- ``unsure-first`` / ``sure-first``: by the active model's confidence in its call, cells without
  a prediction last either way;
- ``blur-sensitive-first``: the calls that move most under blur first (the review queue computes
  it: :func:`cellviewer.core.review.order_by_blur_sensitivity`);
- ``position``: by image, then row (y), then column (x);
- ``updated``: the latest label change first.
"""

from __future__ import annotations

import numpy as np

SLIDE = "slide"
UNSURE_FIRST = "unsure-first"
SURE_FIRST = "sure-first"
BLUR_SENSITIVE_FIRST = "blur-sensitive-first"
POSITION = "position"
UPDATED = "updated"

#: every order, with the words a menu shows for it
ORDERS = {
    SLIDE: "slide order",
    UNSURE_FIRST: "least confident first",
    SURE_FIRST: "most confident first",
    BLUR_SENSITIVE_FIRST: "most blur-sensitive first",
    POSITION: "by position",
    UPDATED: "latest change first",
}


def check_order(order: str | None, allowed: tuple[str, ...]) -> None:
    """ValueError naming the orders a caller offers when ``order`` is not one of them."""
    if order not in allowed:
        raise ValueError(f"order {order!r} is not one of {list(allowed)}")


def order_by_confidence(rows: np.ndarray, confidence: np.ndarray | None,
                        order: str) -> np.ndarray:
    """``rows`` (indices into the image's cells) in ``order``: as given for ``slide``, else by
    the prediction's confidence (``confidence`` aligned with the cells, NaN where a cell has
    none: those come last either way); ties keep the slide order."""
    check_order(order, (SLIDE, UNSURE_FIRST, SURE_FIRST))
    if order == SLIDE or confidence is None or not len(rows):
        return rows
    conf = np.asarray(confidence, dtype=np.float64)[rows]
    key = conf if order == UNSURE_FIRST else -conf
    key = np.where(np.isnan(key), np.inf, key)
    return rows[np.argsort(key, kind="stable")]
