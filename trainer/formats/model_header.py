"""A model file's header, read with the standard library only (no torch, no safetensors).

The one place that knows how a ``.cvmodel``'s metadata is laid out and checked: the trainer's
model-file reader (:mod:`trainer.engine.modelfile`) checks what safetensors hands it with
:func:`check_metadata`, and the desktop app reads a file's architecture and classes in the GUI
thread with :func:`read_model_header` (loading the file would import torch there; the GUI's
start-up path stays free of it), e.g. when the training dialog offers it as the model a new run
starts from.

A safetensors file starts with an 8-byte little-endian header length N, then N bytes of JSON:
one entry per tensor (dtype, shape, offsets) and ``__metadata__``, a string-to-string map. A
CellViewer model file's metadata holds ``format`` (``"cellviewer-model"``), ``format_version``
and ``meta``, a JSON object with at least ``arch`` and ``classes``.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

from trainer.formats.errors import BadModelError, ModelFileError
from trainer.formats.model_schema import (
    TASK_CLASSIFICATION,
    TASK_DETECTION,
    check_model_fields,
)

FORMAT = "cellviewer-model"
FORMAT_VERSION = 1
# safetensors refuses headers above 100 MB; a longer "length" means the file is something else
MAX_HEADER_BYTES = 100_000_000


def check_metadata(path: Path, metadata: object) -> dict[str, Any]:
    """The ``meta`` object of a model file whose safetensors ``__metadata__`` is ``metadata``,
    checked (its fields' bounds by ``model_schema.check_model_fields``); :class:`ModelFileError`
    (:class:`BadModelError` for a field out of bounds) naming ``path`` and the cause otherwise."""
    p = path
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ModelFileError(
            f"{p}: a safetensors file but not a CellViewer model (no {FORMAT!r} metadata)")
    try:
        version = int(metadata.get("format_version", "0"))
        meta = json.loads(metadata["meta"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{p}: damaged CellViewer model metadata ({exc})") from exc
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{p}: model file format {version} is newer than this CellViewer "
            f"(format {FORMAT_VERSION}); update CellViewer")
    if not isinstance(meta, dict):
        raise ModelFileError(f"{p}: damaged CellViewer model metadata (not a JSON object)")
    if not isinstance(meta.get("arch"), str) or not meta["arch"]:
        raise ModelFileError(f"{p}: damaged CellViewer model metadata (no 'arch')")
    classes = meta.get("classes")
    if not isinstance(classes, list) or not classes \
            or not all(isinstance(c, str) for c in classes):
        raise ModelFileError(
            f"{p}: damaged CellViewer model metadata (no list of class names)")
    check_model_fields(p, meta)
    return meta


def model_task(meta: dict[str, Any]) -> str:
    """What the model of a checked ``meta`` does: ``"classification"`` (also every file
    written before the field existed) or ``"detection"``."""
    return str(meta.get("task", TASK_CLASSIFICATION))


_TASK_USE = {
    TASK_CLASSIFICATION: "a cell classifier: it classifies cells that are already marked (the "
                         "Predict tool, python -m trainer predict); it cannot find cells",
    TASK_DETECTION: "a cell detector: it finds cells (python -m trainer detect, cellviewer "
                    "detect --method MODEL.cvmodel, the detection dialog); it cannot classify "
                    "them",
}


def require_task(path: object, meta: dict[str, Any], task: str) -> None:
    """Refuse, by name, a model file of the other kind: a detector loaded as a classifier or
    the reverse (:class:`BadModelError`, kind ``bad-model``, naming the file and what it is)."""
    got = model_task(meta)
    if got != task:
        wanted = "classifier" if task == TASK_CLASSIFICATION else "detector"
        raise BadModelError(f"{path}: not a cell {wanted}: this model file ({meta.get('arch')}) "
                            f"is {_TASK_USE.get(got, got)}")


def read_model_header(path: str | os.PathLike) -> dict[str, Any]:
    """The model file's ``meta`` object (``arch``, ``classes`` and the rest; see
    ``trainer/engine/modelfile.py``), reading only the header: a few kilobytes, however large
    the weights. Raises :class:`ModelFileError` naming the file and the cause."""
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"{p}: model file not found")
    if not p.is_file():
        raise ModelFileError(f"{p}: not a file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ModelFileError(
                    f"{p}: not a CellViewer model file (too short to be a safetensors file)")
            (length,) = struct.unpack("<Q", head)
            size = p.stat().st_size
            if length < 2 or length > MAX_HEADER_BYTES or length > size - 8:
                raise ModelFileError(
                    f"{p}: not a CellViewer model file (not a safetensors file: its header "
                    f"length {length:,} does not fit the file's {size:,} bytes)")
            raw = fh.read(length)
    except OSError as exc:
        raise ModelFileError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(
            f"{p}: not a CellViewer model file (not a safetensors file: its header is not "
            f"JSON)") from exc
    if not isinstance(header, dict):
        raise ModelFileError(
            f"{p}: not a CellViewer model file (not a safetensors file: its header is not a "
            f"JSON object)")
    return check_metadata(p, header.get("__metadata__"))
