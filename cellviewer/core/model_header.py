"""A model file's metadata, read with the standard library only (no torch, no safetensors).

The app shows and checks a ``.cvmodel`` (its architecture, its classes) in the GUI thread, e.g.
when the training dialog offers it as the model a new run starts from. Loading it through
:func:`trainer.engine.modelfile.read_model_meta` would import torch there (seconds, and the GUI's
start-up path must stay free of it), so this module reads only the file's header.

A safetensors file starts with an 8-byte little-endian header length N, then N bytes of JSON:
one entry per tensor (dtype, shape, offsets) and ``__metadata__``, a string-to-string map. A
CellViewer model file's metadata holds ``format`` (``"cellviewer-model"``), ``format_version``
and ``meta``, a JSON object (see ``trainer/engine/modelfile.py``). The checks mirror that
module's reader, so a file refused there is refused here with the same kind of message.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

# The same values as trainer.engine.modelfile (not imported from there: it imports torch);
# tests/cellviewer/core/test_model_header.py checks that they agree.
FORMAT = "cellviewer-model"
FORMAT_VERSION = 1
# safetensors refuses headers above 100 MB; a longer "length" means the file is something else
MAX_HEADER_BYTES = 100_000_000


class ModelHeaderError(ValueError):
    """The file is missing, unreadable or not a CellViewer model; the message names it."""


def read_model_header(path: str | os.PathLike) -> dict[str, Any]:
    """The model file's ``meta`` object (``arch``, ``classes`` and the rest; see
    ``trainer/engine/modelfile.py``), reading only the header: a few kilobytes, however large
    the weights. Raises :class:`ModelHeaderError` naming the file and the cause."""
    p = Path(path)
    if not p.exists():
        raise ModelHeaderError(f"{p}: model file not found")
    if not p.is_file():
        raise ModelHeaderError(f"{p}: not a file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ModelHeaderError(
                    f"{p}: not a CellViewer model file (too short to be a safetensors file)")
            (length,) = struct.unpack("<Q", head)
            size = p.stat().st_size
            if length < 2 or length > MAX_HEADER_BYTES or length > size - 8:
                raise ModelHeaderError(
                    f"{p}: not a CellViewer model file (not a safetensors file: its header "
                    f"length {length:,} does not fit the file's {size:,} bytes)")
            raw = fh.read(length)
    except OSError as exc:
        raise ModelHeaderError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelHeaderError(
            f"{p}: not a CellViewer model file (not a safetensors file: its header is not "
            f"JSON)") from exc
    if not isinstance(header, dict):
        raise ModelHeaderError(
            f"{p}: not a CellViewer model file (not a safetensors file: its header is not a "
            f"JSON object)")
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ModelHeaderError(
            f"{p}: a safetensors file but not a CellViewer model (no {FORMAT!r} metadata)")
    try:
        version = int(metadata.get("format_version", "0"))
        meta = json.loads(metadata["meta"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelHeaderError(f"{p}: damaged CellViewer model metadata ({exc})") from exc
    if version > FORMAT_VERSION:
        raise ModelHeaderError(
            f"{p}: model file format {version} is newer than this CellViewer "
            f"(format {FORMAT_VERSION}); update CellViewer")
    if not isinstance(meta, dict):
        raise ModelHeaderError(f"{p}: damaged CellViewer model metadata (not a JSON object)")
    if not isinstance(meta.get("arch"), str) or not meta["arch"]:
        raise ModelHeaderError(f"{p}: damaged CellViewer model metadata (no 'arch')")
    classes = meta.get("classes")
    if not isinstance(classes, list) or not classes \
            or not all(isinstance(c, str) for c in classes):
        raise ModelHeaderError(
            f"{p}: damaged CellViewer model metadata (no list of class names)")
    return meta
