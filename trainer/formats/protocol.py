"""The trainer's progress protocol: one JSON object per line on stdout, logs on stderr.

Standard library only: the desktop app imports this module to read a training process's
output, and the trainer imports it to write that output, so both sides share one definition.

Every line is an object ``{"v": 1, "event": NAME, ...fields}``. Readers ignore events they do
not know (the trainer may grow new ones) and lines that are not JSON objects (a library that
prints to stdout must not break the reader). The events and their fields:

- ``started``: ``run_dir``, ``config`` (the resolved run configuration), ``device``,
  ``device_name``, ``fast_path`` (``"compile+cuda-graph"``, ``"cuda-graph"``, ``"eager"``...),
  ``amp`` (``"bfloat16"`` or ``"off"``), ``channels_last``, ``model``, ``params``,
  ``trainable_params``, ``classes``, ``excluded_classes``, ``n_train``, ``n_train_augmented``,
  ``n_val``, ``batch_size``, ``steps_per_epoch``, ``epochs``, ``start_epoch`` (> 1 on resume),
  ``lr``, ``weight_decay``, ``schedule``, ``warmup_steps``, ``class_weights`` (the loss's
  per-class weights, or null), ``resumed_from`` (a model file or null),
  ``init_from`` (the model file whose weights started the run, or null),
  ``init_classes_matched`` and ``init_classes_new`` (classes whose head rows it carried over,
  and classes it did not know).
- ``batch`` (a heartbeat, about once a second): ``epoch``, ``epochs``, ``step``, ``steps``,
  ``train_loss`` and ``train_acc`` (running means over the epoch so far), ``samples_per_s``,
  ``elapsed_s``, ``eta_s``.
- ``epoch``: ``epoch``, ``epochs``, ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``,
  ``macro_f1``, ``lr``, ``samples_per_s``, ``epoch_s``, ``elapsed_s``, ``eta_s``,
  ``best_val_acc``, ``best_epoch``, ``improved``.
- ``checkpoint``: ``kind`` (``"last"`` or ``"best"``), ``path``, ``epoch``, ``val_acc``.
- ``stopped``: ``reason`` (a :class:`StopReason` value), ``epoch``, ``detail``.
- ``finished``: ``model_path`` (the best model; the last one when no epoch completed),
  ``last_model_path``, ``run_dir``, ``best_epoch``, ``epochs_run``, ``elapsed_s``, ``classes``,
  ``metrics`` (the best epoch's ``val_acc``, ``macro_f1``, ``val_loss``, ``train_loss``...),
  ``reason``. Every run that does not fail ends with ``stopped`` then ``finished``; one that
  fails ends with ``error``.
- ``error``: ``kind`` (an :class:`ErrorKind` value), ``message`` (what went wrong and what to
  do about it, for a user).
- ``notice``: ``message`` (something a user may want to know that is not an error, e.g. the
  CUDA-graph fast path fell back to eager and why).

Every event written by the trainer also carries ``t``, the Unix time it was written.

A run is stopped by writing the line ``stop`` to the trainer's stdin (or by SIGTERM/SIGINT):
the trainer finishes the batch in flight, writes its model files and reports ``stopped``.
"""

from __future__ import annotations

import codecs
import json
import math
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

PROTOCOL_VERSION = 1

#: The events the trainer writes (readers must ignore any other name).
EVENTS = ("started", "batch", "epoch", "checkpoint", "stopped", "finished", "error", "notice")

#: The line a controller writes to the trainer's stdin to ask for a clean stop.
STOP_COMMAND = "stop"


class StopReason(StrEnum):
    """Why a run ended without an error (the ``reason`` of ``stopped`` and ``finished``)."""

    FINISHED = "finished"  # all epochs ran
    EARLY_STOP = "early-stop"  # validation accuracy stopped improving for `patience` epochs
    STOP_REQUEST = "stop-request"  # "stop" on stdin, SIGTERM or SIGINT
    NON_FINITE_LOSS = "non-finite-loss"  # the training loss became NaN or infinite


class ErrorKind(StrEnum):
    """The ``kind`` of an ``error`` event, so a reader can react without parsing the message."""

    OUT_OF_MEMORY = "out-of-memory"
    BAD_PATCHSET = "bad-patchset"
    MISSING_WEIGHTS = "missing-weights"
    UNKNOWN_MODEL = "unknown-model"
    BAD_CONFIG = "bad-config"
    BAD_MODEL_FILE = "bad-model-file"  # missing, unreadable, not a CellViewer model file
    BAD_MODEL = "bad-model"  # a readable model file whose fields or weights do not fit its
    # architecture (options out of range, tensors missing or of the wrong shape, NaN weights)
    BAD_ARGUMENTS = "bad-arguments"  # the command line does not parse (exit code 2)
    DEVICE = "device"
    RANK_FAILED = "rank-failed"  # training on several processes: another one failed or vanished
    INTERNAL = "internal"


def _jsonable(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null so every reader can parse the line."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # a NumPy or torch scalar
        return _jsonable(value.item())
    return value


def encode_event(event: str, **fields: Any) -> str:
    """One protocol line (no trailing newline): ``{"v": 1, "event": event, **fields}``."""
    obj = {"v": PROTOCOL_VERSION, "event": str(event)}
    for key, value in fields.items():
        if key in ("v", "event"):
            raise ValueError(f"field name {key!r} is reserved by the protocol")
        obj[key] = _jsonable(value)
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def parse_line(line: str | bytes) -> dict | None:
    """The event object on ``line``, or None for an empty line, non-JSON text, or JSON that is
    not a protocol object (an object with a string ``event``)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("event"), str):
        return None
    return obj


class LineBuffer:
    """Turns stdout chunks, which arrive without regard to line boundaries, into events.

    ``feed`` keeps an incomplete last line (and an incomplete UTF-8 sequence) until the rest
    arrives; ``flush`` parses what is left when the process has ended. Lines that are not
    protocol objects are skipped and kept in ``other_lines`` (the last 100) for diagnostics.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self.other_lines: list[str] = []

    def feed(self, chunk: str | bytes) -> list[dict]:
        text = self._decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        if not text:
            return []
        self._pending += text
        *complete, self._pending = self._pending.split("\n")
        return self._parse(complete)

    def flush(self) -> list[dict]:
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return self._parse([rest]) if rest.strip() else []

    def _parse(self, lines: list[str]) -> list[dict]:
        events = []
        for line in lines:
            obj = parse_line(line)
            if obj is not None:
                events.append(obj)
            elif line.strip():
                self.other_lines = (self.other_lines + [line.rstrip("\r")])[-100:]
        return events


def read_events(path: str | Path) -> list[dict]:
    """The events of a run folder's ``events.jsonl`` (or any file of protocol lines)."""
    buf = LineBuffer()
    with open(path, "rb") as fh:
        events = buf.feed(fh.read())
    return events + buf.flush()
