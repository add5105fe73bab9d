"""Running models off the UI thread: batch prediction jobs and a newest-request-wins runner.

- ``PredictorCache`` loads a ``trainer.predict.Predictor`` once per (model file, device) and
  serialises calls to it, so the batch job and the live blur preview can share one loaded model
  (a foundation model is too big to hold twice).
- ``PredictionJob`` runs ``cellviewer.core.predict.job.run_prediction`` on a thread of its own with
  its own connection to the project (SQLite connections belong to one thread) and reports
  progress, each predicted chunk (so the view recolours as results arrive), the summary or the
  error through Qt signals, which Qt delivers in the UI thread.
- ``LatestRunner`` runs one callable at a time in the background; a request submitted
  while another waits replaces it (the newest wins), and the UI is told only of the result of
  the newest request it made. The live blur preview uses it so a fast-moving slider never queues
  up stale work.

torch and the trainer are imported inside the worker threads only: importing this module costs
nothing on the GUI's start-up path.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from cellviewer.ui.common.tasks import DEDICATED, NEWEST, Task, TaskRunner, TaskState


class PredictorCache:
    """Loaded predictors by (model file, device); thread-safe; one lock per predictor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], tuple[Any, threading.Lock]] = {}

    def get(self, model_path: str | Path, device: str = "auto") -> tuple[Any, threading.Lock]:
        """The predictor for the model file on the device (loading it on first use) and the
        lock to hold while calling it. Slow on first use: call from a worker thread."""
        key = (str(Path(model_path).resolve()), device)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                return found
        from trainer.predict import Predictor  # lazily: torch is not on the start-up path

        predictor = Predictor.load(model_path, device=device)
        with self._lock:
            return self._items.setdefault(key, (predictor, threading.Lock()))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class SerialisedPredictor:
    """A predictor whose ``predict`` holds the predictor's lock for one call (one chunk), so
    the batch job and the live preview take turns instead of running one model concurrently."""

    def __init__(self, predictor: Any, lock: threading.Lock) -> None:
        self.predictor = predictor
        self.lock = lock
        self.fov_px = getattr(predictor, "fov_px", None)
        self.device = getattr(predictor, "device", None)  # the job crops by it (one thread: CPU)
        self.classes = list(getattr(predictor, "classes", []))

    def predict(self, patches: Any, **kwargs: Any) -> Any:
        with self.lock:
            return self.predictor.predict(patches, **kwargs)


#: The application's shared cache (the model panel, the batch jobs and the blur preview).
PREDICTORS = PredictorCache()


def _predict(job: PredictionJob, state: TaskState) -> Any:
    """The work of a :class:`PredictionJob` (in its own thread, with its own connection to the
    project: SQLite connections belong to one thread)."""
    from cellviewer.core.predict.job import run_prediction
    from cellviewer.core.sources.identity import ImageChangedError
    from cellviewer.core.store import ProjectStore

    predictor = SerialisedPredictor(*job.cache.get(job.model_path, job.device))
    store = ProjectStore.open(job.project_path)
    if job.user:
        store.user = job.user
    try:
        return run_prediction(
            store, predictor, job.image_ids, model_id=job.model_id,
            cell_ids=job.cell_ids, batch_size=job.batch_size,
            progress=state.set_progress, cancel=state.is_interruption_requested,
            chunk_seconds=job.chunk_seconds, min_chunk=job.min_chunk,
            first_chunk=job.min_chunk, fov_px=job.fov_px,
            store_results=job.store_results, predict_kwargs=job.predict_kwargs,
            keep_source_crops=job.keep_source_crops,
        )
    except ImageChangedError as exc:  # the UI asks what to do: keep the error, not just words
        job.image_changed_error = exc
        raise
    finally:
        store.close()


class PredictionJob(QObject):
    """One batch prediction on a thread of its own (the ``DEDICATED`` policy of
    :class:`cellviewer.ui.common.tasks.TaskRunner`).

    Signals (delivered in the UI thread): ``progress(PredictProgress)`` after every chunk (the
    chunk's cell ids and probabilities ride along: recolour from them), ``finished(
    PredictSummary)`` (also after a cancel: ``summary.cancelled``), ``failed(str)``, and after
    it ``imageChanged(ImageChangedError)`` when the failure was a replaced image (nothing was
    predicted: the caller asks the user, see ``cellviewer.ui.common.image_changed``). ``done``
    follows either, once the thread has ended. The thread ends by itself when the work
    returns, so ``wait`` on a UI thread that runs no events (closing the window) returns as
    soon as the chunk in flight is done.

    With ``store_results=False`` nothing is written (the blur-sensitivity and visible-cell
    previews); ``predict_kwargs`` (``blur_sigma``, ``blur_mode``) go to every predict call.
    """

    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    imageChanged = Signal(object)
    done = Signal()

    def __init__(self, project_path: str | Path, model_path: str | Path, model_id: int | None,
                 image_ids: Sequence[int], *, cell_ids: Sequence[str] | None = None,
                 device: str = "auto", batch_size: int = 1024, chunk_seconds: float = 0.5,
                 min_chunk: int = 16,
                 fov_px: float | None = None, user: str | None = None,
                 store_results: bool = True, predict_kwargs: dict | None = None,
                 keep_source_crops: bool = False,
                 cache: PredictorCache | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project_path = Path(project_path)
        self.model_path = Path(model_path)
        self.model_id = None if model_id is None else int(model_id)
        self.image_ids = [int(i) for i in image_ids]
        self.cell_ids = list(cell_ids) if cell_ids is not None else None
        self.device = device
        self.batch_size = batch_size
        self.chunk_seconds = chunk_seconds
        self.min_chunk = min_chunk
        self.fov_px = fov_px
        self.user = user
        self.store_results = store_results
        self.predict_kwargs = dict(predict_kwargs or {})
        self.keep_source_crops = keep_source_crops
        self.cache = cache or PREDICTORS
        self._runner = TaskRunner(DEDICATED, parent=self)
        self._task: Task | None = None
        self._cancelled = False
        self._over = False  # its outcome was delivered
        self.image_changed_error: Any = None  # set by the worker thread before it fails

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("a PredictionJob runs once")
        self._task = self._runner.start(
            _predict, self, progress=self.progress.emit, done=self._on_finished,
            failed=self._on_failed, ended=self.done.emit)
        if self._cancelled:
            self._task.state.request_interruption()

    def cancel(self) -> None:
        """Ask the job to stop; it stops after the chunk in flight (a fraction of a second)."""
        self._cancelled = True
        if self._task is not None:
            self._task.state.request_interruption()

    def is_running(self) -> bool:
        """Until its outcome (``finished`` or ``failed``) is delivered: the thread may take a
        moment longer to end, and a new prediction may start meanwhile."""
        return self._task is not None and not self._over and self._task.is_running()

    def _on_finished(self, summary: Any) -> None:
        self._over = True
        self.finished.emit(summary)

    def wait(self, ms: int = 30000) -> bool:
        """Block until the thread ends (tests and application shutdown only)."""
        return self._task.wait(ms) if self._task is not None else True

    def _on_failed(self, message: str) -> None:
        self._over = True
        print(f"prediction failed: {message}", file=sys.stderr)
        self.failed.emit(message)
        if self.image_changed_error is not None:
            self.imageChanged.emit(self.image_changed_error)


class LatestRunner(QObject):
    """Run callables in the background, newest request wins (the ``NEWEST`` policy of
    :class:`cellviewer.ui.common.tasks.TaskRunner`).

    ``submit(fn)`` returns a ticket; ``fn()`` runs in the background unless a newer request
    arrives before it starts. ``resultReady(ticket, result)`` (or ``errorRaised(ticket,
    message)``) is emitted only for the newest ticket, so a result that a newer request has made
    stale never reaches the screen.
    """

    resultReady = Signal(int, object)
    errorRaised = Signal(int, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runner = TaskRunner(NEWEST, parent=self)
        self._ticket = 0

    @property
    def latest_ticket(self) -> int:
        return self._ticket

    def submit(self, fn: Callable[[], Any]) -> int:
        if self._runner._closed:
            return self._ticket
        self._ticket += 1
        ticket = self._ticket
        self._runner.start(lambda _state: fn(),
                           done=lambda result: self.resultReady.emit(ticket, result),
                           failed=lambda message: self.errorRaised.emit(ticket, message))
        return ticket

    def is_idle(self) -> bool:
        return self._runner.is_idle()

    def close(self) -> None:
        self._runner.close(5000)


def available_devices() -> list[tuple[str, str]]:
    """The devices a model can run on, as (device string, label): ``auto``, each CUDA GPU by
    name, Apple MPS, CPU. Imports torch: call it from a worker thread or after start-up."""
    import torch

    from cellviewer.core.training.devices import AUTO, AUTO_LABEL

    out = [(AUTO, AUTO_LABEL)]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            out.append((f"cuda:{i}", f"CUDA {i}: {torch.cuda.get_device_name(i)}"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append(("mps", "Apple MPS"))
    out.append(("cpu", "CPU"))
    return out


def describe_device(device: Any) -> str:
    """A device (``torch.device`` or string, ``auto`` included) in words: the GPU's name,
    "Apple MPS", "CPU (n threads)" — what "auto" means is the trainer's rule
    (``trainer.engine.device.select_device``), the same for training and prediction."""
    from trainer.engine.device import device_name, select_device

    return device_name(select_device(str(device)))


def cpu_note() -> tuple[str | None, str | None]:
    """Why a model runs on the CPU, in a few words and as advice (None, None with a GPU)."""
    from trainer.engine.device import gpu_status

    status = gpu_status()
    return status.get("short"), status.get("advice")
