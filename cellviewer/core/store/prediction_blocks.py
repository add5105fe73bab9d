"""Predictions stored in blocks: one row per (model, block of 2,048 consecutive cell keys).

Why blocks: a row per (model, cell) went through three B-trees (the key, an index by cell for
the cascade, an index by confidence) and stored ~95,000 predictions/s; even a bare
``executemany`` into an unindexed table manages only ~300,000/s on a 2-core machine, because
SQLite pays per row. A block row holds the cells' offsets in the block (uint16) and their
probabilities (float32, the model's class order) as two BLOBs, so storing 500,000 predictions
writes ~250 rows. ``benchmarks/bench_store_predictions.py`` measured the layouts.

Cell keys come from a counter and are handed out in spatial order per addition, so an image's
cells fill whole blocks and a batch prediction over an image touches each block about once.
The predicted index and its confidence are not stored: ``argmax`` of the probabilities gives
them back exactly. Queries that filter or sort by a prediction (the review queues) read the
blocks and do it with NumPy (:mod:`cellviewer.core.store.cells`).

Invariant: a cell has at most one entry per model, and only existing cells have entries
(deleting cells takes theirs out, for undo to put back: :func:`take`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import numpy as np

BLOCK_BITS = 11
BLOCK = 1 << BLOCK_BITS
_OFFSET = np.dtype("<u2")
_PROB = np.dtype("<f4")
_IN_LIST = 400  # blocks fetched by an IN list; more: by one range scan

SCHEMA = """
CREATE TABLE prediction_blocks (
    model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    block    INTEGER NOT NULL,          -- cell key >> 11
    n        INTEGER NOT NULL,          -- entries in the block
    offsets  BLOB NOT NULL,             -- uint16 little-endian, ascending: key & 2047
    probs    BLOB NOT NULL,             -- float32 little-endian, n x the model's classes
    PRIMARY KEY (model_id, block)
)"""


def _blocks_rows(conn: sqlite3.Connection, model_id: int, blocks: np.ndarray
                 ) -> Iterable[tuple[int, bytes, bytes]]:
    """(block, offsets, probs) of these blocks (sorted, unique) that exist, in block order."""
    if not len(blocks):
        return []
    if len(blocks) <= _IN_LIST:
        marks = ",".join("?" * len(blocks))
        return conn.execute(
            f"SELECT block, offsets, probs FROM prediction_blocks WHERE model_id = ?"
            f" AND block IN ({marks}) ORDER BY block", (int(model_id), *blocks.tolist()))
    wanted = set(blocks.tolist())
    rows = conn.execute(
        "SELECT block, offsets, probs FROM prediction_blocks WHERE model_id = ?"
        " AND block BETWEEN ? AND ? ORDER BY block",
        (int(model_id), int(blocks[0]), int(blocks[-1])))
    return (r for r in rows if r[0] in wanted)


def _stored(conn: sqlite3.Connection, model_id: int, k: int, blocks: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Every entry of these blocks: keys (ascending) and probabilities (n, k)."""
    keys: list[np.ndarray] = []
    probs: list[bytes] = []
    for block, offsets, blob in _blocks_rows(conn, model_id, blocks):
        keys.append((int(block) << BLOCK_BITS) + np.frombuffer(offsets, _OFFSET).astype(np.int64))
        probs.append(blob)
    if not keys:
        return np.empty(0, np.int64), np.empty((0, k), np.float32)
    return (np.concatenate(keys),
            np.frombuffer(bytearray(b"".join(probs)), _PROB).reshape(-1, k))  # writable


def read(conn: sqlite3.Connection, model_id: int, k: int, keys: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray]:
    """One model's probabilities for cell ``keys`` (any order, repeats allowed): a mask of the
    keys that have one and an (n, k) float32 array (NaN where none)."""
    keys = np.asarray(keys, dtype=np.int64)
    if not len(keys):
        return np.zeros(0, dtype=bool), np.empty((0, k), dtype=np.float32)
    stored_keys, stored = _stored(conn, model_id, k, np.unique(keys >> BLOCK_BITS))
    if np.array_equal(stored_keys, keys):  # an image's every cell, in key order: as stored
        return np.ones(len(keys), dtype=bool), stored
    out = np.full((len(keys), k), np.nan, dtype=np.float32)
    if not len(stored_keys):
        return np.zeros(len(keys), dtype=bool), out
    at = np.clip(np.searchsorted(stored_keys, keys), 0, len(stored_keys) - 1)
    found = stored_keys[at] == keys
    out[found] = stored[at[found]]
    return found, out


def write(conn: sqlite3.Connection, model_id: int, keys: np.ndarray, probs: np.ndarray) -> None:
    """Store (or replace) probabilities for existing, distinct cell keys: each touched block
    is read once, merged (the new values win) and written back as one row."""
    keys = np.asarray(keys, dtype=np.int64)
    if not len(keys):
        return
    k = probs.shape[1]
    order = np.argsort(keys, kind="stable")
    keys, probs = keys[order], np.ascontiguousarray(probs[order], dtype=_PROB)
    blocks, starts = np.unique(keys >> BLOCK_BITS, return_index=True)
    old_keys, old_probs = _stored(conn, model_id, k, blocks)
    if len(old_keys):  # keep the old entries the new ones do not replace
        keep = ~np.isin(old_keys, keys, assume_unique=True)
        if keep.any():
            keys = np.concatenate([keys, old_keys[keep]])
            probs = np.concatenate([probs, old_probs[keep]])
            order = np.argsort(keys, kind="stable")
            keys, probs = keys[order], probs[order]
            blocks, starts = np.unique(keys >> BLOCK_BITS, return_index=True)
    ends = np.append(starts[1:], len(keys))
    offsets = (keys & (BLOCK - 1)).astype(_OFFSET)
    conn.executemany(
        "INSERT OR REPLACE INTO prediction_blocks (model_id, block, n, offsets, probs)"
        " VALUES (?, ?, ?, ?, ?)",
        ((int(model_id), int(b), int(e - s), offsets[s:e].tobytes(), probs[s:e].tobytes())
         for b, s, e in zip(blocks.tolist(), starts.tolist(), ends.tolist(), strict=True)))


def take(conn: sqlite3.Connection, keys: np.ndarray
         ) -> list[tuple[int, int, bytes, int, float]]:
    """Remove every model's entries for these cell keys (cells about to be deleted) and return
    them as ``(model_id, key, probs, predicted, confidence)`` rows (what ``op_predictions``
    keeps for undo)."""
    keys = np.unique(np.asarray(keys, dtype=np.int64))
    taken: list[tuple[int, int, bytes, int, float]] = []
    if not len(keys):
        return taken
    blocks = np.unique(keys >> BLOCK_BITS)
    for (model_id,) in conn.execute("SELECT id FROM models").fetchall():
        k = conn.execute("SELECT count(*) FROM model_classes WHERE model_id = ?",
                         (model_id,)).fetchone()[0]
        stored_keys, stored = _stored(conn, model_id, k, blocks)
        if not len(stored_keys):
            continue
        gone = np.isin(stored_keys, keys, assume_unique=True)
        if not gone.any():
            continue
        predicted = stored[gone].argmax(axis=1)
        confidence = stored[gone][np.arange(int(gone.sum())), predicted]
        taken.extend(zip([int(model_id)] * int(gone.sum()), stored_keys[gone].tolist(),
                         [row.tobytes() for row in stored[gone]], predicted.tolist(),
                         confidence.astype(np.float64).tolist(), strict=True))
        touched = np.unique(stored_keys[gone] >> BLOCK_BITS)
        conn.executemany("DELETE FROM prediction_blocks WHERE model_id = ? AND block = ?",
                         [(int(model_id), int(b)) for b in touched.tolist()])
        rest = ~gone & np.isin(stored_keys >> BLOCK_BITS, touched)
        if rest.any():
            write(conn, model_id, stored_keys[rest], stored[rest])
    return taken


def restore(conn: sqlite3.Connection, rows: Iterable[tuple[int, int, bytes]]) -> None:
    """Put back ``(model_id, key, probs)`` rows (from ``op_predictions``) for models and cells
    that exist."""
    by_model: dict[int, tuple[list[int], list[bytes]]] = {}
    for model_id, key, blob in rows:
        keys, blobs = by_model.setdefault(int(model_id), ([], []))
        keys.append(int(key))
        blobs.append(blob)
    for model_id, (keys, blobs) in by_model.items():
        k = len(blobs[0]) // _PROB.itemsize
        write(conn, model_id, np.array(keys, dtype=np.int64),
              np.frombuffer(b"".join(blobs), _PROB).reshape(-1, k))


def count(conn: sqlite3.Connection, model_id: int) -> int:
    """How many cells have a prediction of this model."""
    return int(conn.execute("SELECT coalesce(sum(n), 0) FROM prediction_blocks"
                            " WHERE model_id = ?", (int(model_id),)).fetchone()[0])


def predicted_and_confidence(probs: np.ndarray, found: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray]:
    """The predicted index (-1 where none) and its probability (NaN where none)."""
    if found.all():
        predicted = probs.argmax(axis=1)
        return predicted, np.take_along_axis(probs, predicted[:, None], axis=1)[:, 0]
    predicted = np.full(len(probs), -1, dtype=np.int64)
    confidence = np.full(len(probs), np.nan, dtype=np.float32)
    if found.any():
        sub = probs[found]
        best = sub.argmax(axis=1)
        predicted[found] = best
        confidence[found] = sub[np.arange(len(sub)), best]
    return predicted, confidence
