"""Batch prediction of a project's cells: crop, infer, store, with progress and cancellation.

This is the Qt-free half of the desktop app's "Model → Predict…" (the Qt wrapper that runs it
in a worker thread is ``cellviewer.ui.predict.worker``). It is a plain function with a
progress callback, so the benchmark and the tests drive exactly what the GUI runs.

Pipeline: a producer thread reads each image and crops its cells (``crop_patches``) in
slide-tile order, packing the patches of several images into chunks; the calling thread runs
the model on one chunk while the producer crops the next (a bounded queue of two chunks) and a
writer thread stores the previous chunk's probabilities through a connection of its own; the
calling thread reports progress once a chunk is stored. Torch, ONNX Runtime, OpenSlide, NumPy
and SQLite release the GIL in their heavy parts, so the stages overlap and the accelerator is
kept busy. Beside a CPU model the producer crops with one thread (``crop_workers_for``): the
model's intra-op threads fill the cores. ``bench_predict.py --ratio`` measured the end to end
against the bare model (CustomViT, ONNX Runtime, 2 threads, a loaded 2-core machine) at 0.94
and 1.16 of its cells/s without the store and 0.87 and 1.15 with today's store (6,000 and
20,000 cells); by CPU time per cell 0.98 and 0.93 without, 0.90 and 0.93 with it.

Cancellation is checked between chunks; chunks are sized from the measured rate so that one
takes about ``chunk_seconds`` (half a second by default, never fewer than ``min_chunk`` cells),
hence a Cancel takes effect within a chunk or two. Everything finished before the cancel is
stored: a cancelled run loses nothing it reported.

SQLite connections belong to the thread that opened them: call ``run_prediction`` with a store
opened in the thread that runs it (the GUI's worker opens its own connection to the project).

Replaced images: before anything is cropped, every image to predict is checked against the
project's record (``cellviewer.core.sources.identity.check_image``: its content fingerprint,
cached per file state, so a second run costs a stat per image). A file that was replaced raises
``ImageChangedError`` naming it and what changed, and nothing is predicted or stored: stored
predictions are never overwritten from another image. A run that predicted every cell of an
image with a model clears that model's stale mark on it (``cellviewer.core.sources.replaced``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Neither torch nor the trainer is imported here at module level: the predictor is passed in.

DEFAULT_FOV_PX = 40.0
# Chunks below a few hundred cells waste the model's batch efficiency on a CPU (CustomViT runs
# about 2.5x faster per cell at batch 1024 than at 64); above 16k they make Cancel slow on a GPU.
MIN_CHUNK = 256
MAX_CHUNK = 16384


@dataclass
class ChunkResult:
    """The cells of one predicted chunk, in order, with their class probabilities."""

    cell_ids: list[str]
    image_ids: np.ndarray  # (N,) int64: the image of each cell
    probs: np.ndarray  # (N, K) float32, K = the model's classes

    def __len__(self) -> int:
        return len(self.cell_ids)


@dataclass
class PredictProgress:
    """Reported after each chunk is predicted (and stored)."""

    done: int
    total: int
    elapsed_s: float
    chunk: ChunkResult

    @property
    def cells_per_s(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        rate = self.cells_per_s
        return (self.total - self.done) / rate if rate > 0 else None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass
class PredictSummary:
    model_id: int | None
    total: int
    done: int
    cancelled: bool
    elapsed_s: float
    crop_s: float = 0.0  # time the producer spent cropping (overlapped with inference)
    infer_s: float = 0.0  # time spent in the model
    store_s: float = 0.0  # time spent writing predictions
    image_ids: list[int] = field(default_factory=list)

    @property
    def cells_per_s(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class _ImageCells:
    image_id: int
    path: Any
    ids: list[str]
    xy: np.ndarray  # (N, 2) float64
    rows: np.ndarray | None = None  # the store's internal keys (faster to write than UUIDs)
    record: Any = None  # the store's ImageRecord (checked against the file before use)


@dataclass
class _Chunk:
    patches: np.ndarray
    source_crops: np.ndarray | None
    cell_ids: list[str]
    image_ids: np.ndarray
    crop_s: float
    rows: np.ndarray | None = None


class _Failure:
    """A producer exception travelling to the consumer through the queue."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_DONE = object()


def _as_cancel(cancel: threading.Event | Callable[[], bool] | None) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    return cancel


def cells_to_predict(store: Any, image_ids: Iterable[int],
                     cell_ids: Sequence[str] | None = None) -> list[_ImageCells]:
    """The cells of ``image_ids`` (all of them, or only ``cell_ids`` among them), per image."""
    wanted = set(cell_ids) if cell_ids is not None else None
    out: list[_ImageCells] = []
    for image_id in image_ids:
        record = store.image(image_id)
        arrays = store.cell_arrays(image_id)
        ids = [str(i) for i in arrays.ids]
        xy = np.asarray(arrays.xy, dtype=np.float64).reshape(-1, 2)
        rows = getattr(arrays, "rows", None)
        rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        if wanted is not None:
            keep = np.fromiter((i in wanted for i in ids), dtype=bool, count=len(ids))
            ids = [i for i, k in zip(ids, keep, strict=True) if k]
            xy = xy[keep]
            rows = None if rows is None else rows[keep]
        if ids:
            order = spatial_order(xy)
            out.append(_ImageCells(int(image_id), record.path, [ids[i] for i in order],
                                   xy[order], None if rows is None else rows[order], record))
    return out


def spatial_order(xy: np.ndarray, tile: float = 512.0) -> np.ndarray:
    """Cell order that keeps each chunk compact on the slide: tile by tile (rows of ``tile``-px
    squares, left to right), so cropping a chunk reads a few regions, not the whole slide (cells
    come from the store in the order they were added, which may be anything)."""
    if len(xy) == 0:
        return np.zeros(0, dtype=np.int64)
    tx = np.floor(xy[:, 0] / tile).astype(np.int64)
    ty = np.floor(xy[:, 1] / tile).astype(np.int64)
    tx -= tx.min()
    ty -= ty.min()
    return np.lexsort((xy[:, 0], tx, ty))


def _default_open(path: Any) -> Any:
    from cellviewer.core.sources import open_image

    return open_image(path)


def _open_recorded(cells: _ImageCells) -> Any:
    """Open an image to predict: checked against the project's record when there is one."""
    if cells.record is None:
        return _default_open(cells.path)
    from cellviewer.core.sources.identity import open_recorded_image

    return open_recorded_image(cells.record)


def _default_crop(source: Any, xy: np.ndarray, fov_px: float,
                  keep_source_crops: bool = False, workers: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    from cellviewer.core.cells.crop import crop_patches

    result = crop_patches(source, xy, fov_px, keep_source_crops=keep_source_crops,
                          workers=workers)
    return result.patches, (result.source_crops if keep_source_crops else None)


def crop_workers_for(predictor: Any) -> int | None:
    """Threads for cropping beside ``predictor``: one when the model runs on the CPU (its
    ``device`` says so), else the cropper's default (a few). On the CPU the model's intra-op
    threads already fill the cores; cropping is about 1% of the work there (15 us of CPU a cell
    against about 1.3 ms for CustomViT on ONNX Runtime) and the producer thread overlaps it
    anyway, so a pool of croppers only takes cores from the model in turns (oversubscription)
    and costs a pool per chunk. Beside an accelerator cropping sets the pace: the pool stays."""
    device = getattr(predictor, "device", None)
    kind = getattr(device, "type", device)
    return 1 if kind is not None and str(kind) == "cpu" else None


CropFn = Callable[[Any, np.ndarray, float, bool], "tuple[np.ndarray, np.ndarray | None]"]


class _Producer(threading.Thread):
    """Crops the cells image by image and packs them into chunks of ``target`` cells."""

    def __init__(self, images: list[_ImageCells], fov_px: float, out: queue.Queue,
                 cancelled: Callable[[], bool], target: list[int],
                 open_cells: Callable[[_ImageCells], Any], crop: CropFn,
                 keep_source_crops: bool) -> None:
        super().__init__(name="predict-crop", daemon=True)
        self.images, self.fov_px, self.out = images, fov_px, out
        self.keep_source_crops = keep_source_crops
        self.cancelled, self.target = cancelled, target
        self.open_cells, self.crop = open_cells, crop
        self.crop_s = 0.0

    def _put(self, item: object) -> bool:
        """Put unless cancelled; returns False when the run was cancelled meanwhile."""
        while not self.cancelled():
            try:
                self.out.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # forwarded to the consumer, who re-raises
            self._put(_Failure(exc))
        else:
            self._put(_DONE)

    def _run(self) -> None:
        parts: list[np.ndarray] = []
        src: list[np.ndarray] = []
        keys: list[np.ndarray | None] = []
        ids: list[str] = []
        img: list[np.ndarray] = []
        t_chunk = 0.0
        n = 0
        for cells in self.images:
            if self.cancelled():
                return
            t0 = time.perf_counter()
            source = self.open_cells(cells)
            t_chunk += time.perf_counter() - t0
            try:
                start = 0
                while start < len(cells.ids):
                    if self.cancelled():
                        return
                    take = max(self.target[0] - n, 1)
                    stop = min(start + take, len(cells.ids))
                    t0 = time.perf_counter()
                    patches, crops = self.crop(source, cells.xy[start:stop], self.fov_px,
                                               self.keep_source_crops)
                    dt = time.perf_counter() - t0
                    t_chunk += dt
                    self.crop_s += dt
                    parts.append(np.asarray(patches, dtype=np.uint8))
                    if crops is not None:
                        src.append(np.asarray(crops, dtype=np.uint8))
                    ids.extend(cells.ids[start:stop])
                    keys.append(None if cells.rows is None else cells.rows[start:stop])
                    img.append(np.full(stop - start, cells.image_id, dtype=np.int64))
                    n += stop - start
                    start = stop
                    if n >= self.target[0]:
                        if not self._put(self._chunk(parts, src, keys, ids, img, t_chunk)):
                            return
                        parts, src, keys, ids, img, n, t_chunk = [], [], [], [], [], 0, 0.0
            finally:
                close = getattr(source, "close", None)
                if close is not None:
                    close()
        if n:
            self._put(self._chunk(parts, src, keys, ids, img, t_chunk))

    @staticmethod
    def _chunk(parts: list[np.ndarray], src: list[np.ndarray], keys: list[np.ndarray | None],
               ids: list[str], img: list[np.ndarray], crop_s: float) -> _Chunk:
        # Source crops of different images may differ in size (a field of view in µm): only a
        # chunk whose crops agree can be stacked; the rest goes without (post-resize only).
        crops = None
        if src and len(src) == len(parts) and len({c.shape[1:] for c in src}) == 1:
            crops = _cat(src)
        known = [k for k in keys if k is not None]
        rows = np.concatenate(known) if len(known) == len(keys) else None
        return _Chunk(_cat(parts), crops, ids, np.concatenate(img), crop_s, rows)


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def run_prediction(
    store: Any,
    predictor: Any,
    image_ids: Iterable[int],
    *,
    model_id: int | None = None,
    cell_ids: Sequence[str] | None = None,
    fov_px: float | None = None,
    batch_size: int = 1024,
    chunk_seconds: float = 0.5,
    first_chunk: int = MIN_CHUNK,
    min_chunk: int = MIN_CHUNK,
    max_chunk: int = MAX_CHUNK,
    progress: Callable[[PredictProgress], None] | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
    store_results: bool = True,
    predict_kwargs: dict[str, Any] | None = None,
    keep_source_crops: bool = False,
    parallel_store: bool = True,
    open_source: Callable[[Any], Any] | None = None,
    crop: CropFn | None = None,
    check_images: bool = True,
    crop_workers: int | None = None,
) -> PredictSummary:
    """Predict the cells of ``image_ids`` (or only ``cell_ids`` among them) with ``predictor``.

    ``predictor`` is a ``trainer.predict.Predictor`` (anything with ``predict(patches_u8,
    batch_size=...)`` returning an object with ``probs``). With ``store_results`` the
    probabilities go to ``store.put_predictions(model_id, ...)`` chunk by chunk, so a cancelled
    or crashed run keeps what it finished. ``progress`` is called in this thread after every
    chunk. ``fov_px`` defaults to the model's field of view (``predictor.fov_px``) or 40.
    ``predict_kwargs`` go to every ``predictor.predict`` call (``blur_sigma``, ``blur_mode``);
    ``keep_source_crops`` also crops at the field of view before resizing and passes those
    crops as ``source_crops`` (pre-resize blur needs them). With ``parallel_store`` (and a
    store that can be opened again from its path) the writes run in a third thread on a
    connection of their own; progress is still reported in this thread, once a chunk is stored.
    ``crop_workers``: threads of the default cropper (default: :func:`crop_workers_for`).
    """
    cancelled = _as_cancel(cancel)
    if store_results and model_id is None:
        raise ValueError("run_prediction: store_results needs the model_id the results belong to")
    if fov_px is None:
        fov_px = float(getattr(predictor, "fov_px", None) or DEFAULT_FOV_PX)
    image_ids = [int(i) for i in image_ids]
    images = cells_to_predict(store, image_ids, cell_ids)
    total = sum(len(c.ids) for c in images)
    summary = PredictSummary(model_id, total, 0, False, 0.0, image_ids=image_ids)
    if total == 0:
        return summary
    if check_images:
        from cellviewer.core.sources.identity import check_image

        for cells in images:  # all of them before the first crop: a refusal stores nothing
            if cells.record is not None:
                check_image(cells.record)

    min_chunk = max(1, min(min_chunk, max_chunk))
    target = [max(min_chunk, min(first_chunk, max_chunk))]
    chunks: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def should_stop() -> bool:
        return stop.is_set() or cancelled()

    if open_source is not None:
        def open_cells(cells: _ImageCells) -> Any:
            return open_source(cells.path)
    elif check_images:
        open_cells = _open_recorded
    else:
        def open_cells(cells: _ImageCells) -> Any:
            return _default_open(cells.path)
    if crop is None:
        workers = crop_workers if crop_workers is not None else crop_workers_for(predictor)

        def crop(source: Any, xy: np.ndarray, fov: float, keep: bool
                 ) -> tuple[np.ndarray, np.ndarray | None]:
            return _default_crop(source, xy, fov, keep, workers)
    producer = _Producer(images, fov_px, chunks, should_stop, target,
                         open_cells, crop, keep_source_crops)
    writer = None
    if store_results and parallel_store and _can_reopen(store):
        writer = _Writer(lambda: type(store).open(store.path), model_id)
    kwargs = dict(predict_kwargs or {})
    t_start = time.perf_counter()
    timing = {"infer": 0.0}

    def report(payload: tuple, store_s: float) -> None:
        item, probs, infer_s = payload
        summary.store_s += store_s
        summary.done += len(item.cell_ids)
        # Size the next chunks so that the slowest stage takes about chunk_seconds per chunk.
        per_cell = max(infer_s, item.crop_s, store_s) / len(item.cell_ids)
        target[0] = int(min(max_chunk, max(min_chunk, chunk_seconds / max(per_cell, 1e-7))))
        if progress is not None:
            chunk = ChunkResult(item.cell_ids, item.image_ids, probs)
            progress(PredictProgress(summary.done, total, time.perf_counter() - t_start, chunk))

    def drain(wait: bool = False) -> None:
        """Report the chunks the writer has stored (all of them, once it ended, with wait)."""
        if writer is None:
            return
        while True:
            try:
                done = writer.outbox.get(timeout=0.05) if wait else writer.outbox.get_nowait()
            except queue.Empty:
                if wait and writer.is_alive():
                    continue
                if wait and not writer.outbox.empty():
                    continue
                return
            if isinstance(done, _Failure):
                raise done.exc
            report(*done)

    producer.start()
    if writer is not None:
        writer.start()
    try:
        while True:
            drain()
            if cancelled():
                summary.cancelled = True
                break
            try:
                item = chunks.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is _DONE:
                break
            if isinstance(item, _Failure):
                raise item.exc
            t0 = time.perf_counter()
            if item.source_crops is not None:
                kwargs["source_crops"] = item.source_crops
            else:
                kwargs.pop("source_crops", None)
            result = predictor.predict(item.patches, batch_size=batch_size, **kwargs)
            probs = np.asarray(result.probs, dtype=np.float32)
            infer_s = time.perf_counter() - t0
            timing["infer"] += infer_s
            keys = item.rows if item.rows is not None else item.cell_ids
            if writer is not None:
                writer.send((keys, probs, (item, probs, infer_s)), drain)
            elif store_results:
                t1 = time.perf_counter()
                store.put_predictions(model_id, keys, probs)
                report((item, probs, infer_s), time.perf_counter() - t1)
            else:
                report((item, probs, infer_s), 0.0)
    finally:
        stop.set()
        if writer is not None:
            writer.finish()
        producer.join(timeout=30)
        summary.crop_s = producer.crop_s
        summary.infer_s = timing["infer"]
    if writer is not None:
        drain(wait=True)  # everything inferred is stored and reported, even after a cancel
    summary.elapsed_s = time.perf_counter() - t_start
    if summary.done < total and cancelled():
        summary.cancelled = True
    if store_results and cell_ids is None and summary.done == total and model_id is not None \
            and callable(getattr(store, "setting", None)):
        from cellviewer.core.sources.replaced import clear_stale

        clear_stale(store, [c.image_id for c in images], model_id)
    return summary


def _can_reopen(store: Any) -> bool:
    return callable(getattr(type(store), "open", None)) and getattr(store, "path", None) \
        is not None and not getattr(store, "readonly", False)


class _Writer(threading.Thread):
    """Stores predicted chunks through a connection of its own (SQLite connections belong to
    one thread), so writing chunk i overlaps inferring chunk i + 1. Reports each stored chunk
    (or its failure) in ``outbox``, which the calling thread drains to report progress."""

    def __init__(self, open_store: Callable[[], Any], model_id: int | None) -> None:
        super().__init__(name="predict-store", daemon=True)
        self.open_store, self.model_id = open_store, model_id
        self.inbox: queue.Queue = queue.Queue(maxsize=1)
        self.outbox: queue.Queue = queue.Queue()

    def send(self, item: tuple, drain: Callable[[], None]) -> None:
        """Queue a chunk for writing, reporting stored chunks while waiting for room."""
        while True:
            try:
                self.inbox.put(item, timeout=0.05)
                return
            except queue.Full:
                if not self.is_alive():
                    drain()  # raises the writer's failure
                    raise RuntimeError("the prediction writer stopped unexpectedly") from None
                drain()

    def finish(self) -> None:
        while self.is_alive():
            try:
                self.inbox.put(None, timeout=0.05)
                break
            except queue.Full:
                continue
        self.join(timeout=60)

    def run(self) -> None:
        try:
            store = self.open_store()
        except BaseException as exc:  # re-raised in the calling thread
            self.outbox.put(_Failure(exc))
            return
        try:
            while True:
                item = self.inbox.get()
                if item is None:
                    return
                keys, probs, payload = item
                t0 = time.perf_counter()
                store.put_predictions(self.model_id, keys, probs)
                self.outbox.put((payload, time.perf_counter() - t0))
        except BaseException as exc:
            self.outbox.put(_Failure(exc))
        finally:
            store.close()


# --- classes: does the model speak the project's language? -------------------------------------


@dataclass
class ClassMatch:
    """How a model's classes relate to the project's, matched by name (case-insensitive, as
    the store's ``add_model`` matches them)."""

    model_classes: list[str]
    project_classes: list[str]
    mapping: dict[int, int | None]  # model class index -> project class index (None: no match)
    missing_in_project: list[str]  # model classes the project does not have
    missing_in_model: list[str]  # project classes the model cannot predict
    case_differs: list[str] = field(default_factory=list)  # matched only ignoring case

    @property
    def identical(self) -> bool:
        """Same names in the same order."""
        return self.model_classes == self.project_classes

    @property
    def compatible(self) -> bool:
        """Every model class is a project class, spelt the same: the model can be used without
        asking (it may know fewer classes than the project, e.g. FlagLimit dropped some)."""
        return not self.missing_in_project and not self.case_differs

    @property
    def mappable(self) -> bool:
        """At least one class in common, so mapping by name gives something."""
        return any(v is not None for v in self.mapping.values())

    def describe(self) -> str:
        """A message a user can act on: what differs and what mapping by name would do."""
        if self.identical:
            return "The model's classes are the project's."
        lines = [f"The model has {len(self.model_classes)} classes; the project has "
                 f"{len(self.project_classes)}."]
        if self.missing_in_project:
            lines.append("Not in the project: " + ", ".join(self.missing_in_project) + ".")
        if self.case_differs:
            lines.append("Spelt differently (case): " + ", ".join(self.case_differs) + ".")
        if self.missing_in_model:
            lines.append("The model cannot predict: " + ", ".join(self.missing_in_model) + ".")
        if not self.mappable:
            lines.append("No class names in common: this model cannot be used on this project.")
        elif not self.compatible:
            n = sum(v is not None for v in self.mapping.values())
            lines.append(f"Mapping by name links {n} of the model's {len(self.model_classes)} "
                         "classes to the project's; predictions of the others are kept but "
                         "count as no project class.")
        return "\n".join(lines)


def match_classes(model_classes: Sequence[str], project_classes: Sequence[str]) -> ClassMatch:
    """Match a model's classes to the project's by name (exactly, else ignoring case and outer
    spaces, like ``ProjectStore.add_model``)."""
    exact = {c: i for i, c in enumerate(project_classes)}
    loose = {c.strip().casefold(): i for i, c in enumerate(project_classes)}
    mapping: dict[int, int | None] = {}
    case_differs = []
    for i, c in enumerate(model_classes):
        j = exact.get(c)
        if j is None:
            j = loose.get(c.strip().casefold())
            if j is not None:
                case_differs.append(c)
        mapping[i] = j
    used = {j for j in mapping.values() if j is not None}
    return ClassMatch(
        model_classes=list(model_classes),
        project_classes=list(project_classes),
        mapping=mapping,
        missing_in_project=[c for i, c in enumerate(model_classes) if mapping[i] is None],
        missing_in_model=[c for j, c in enumerate(project_classes) if j not in used],
        case_differs=case_differs,
    )


# --- blur sensitivity: how much does a call move under blur? ----------------------------------


def blur_sensitivity(clean: np.ndarray, blurred: np.ndarray) -> np.ndarray:
    """Total-variation distance between clean and blurred class probabilities, per cell (0..1).

    0 means blur changes nothing; 1 means the blurred prediction shares no mass with the clean
    one. The review queue sorts by it to show the most fragile calls first.
    """
    clean = np.asarray(clean, dtype=np.float64)
    blurred = np.asarray(blurred, dtype=np.float64)
    return 0.5 * np.abs(clean - blurred).sum(axis=1)
