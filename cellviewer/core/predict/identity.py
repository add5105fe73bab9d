"""A model's identity for people and for other tools: its name and the SHA-256 of its file.

A project's model id is a number that means nothing outside the project; the file's SHA-256 is
what ``python -m trainer export-onnx`` writes into an ONNX file (``cellviewer.model_sha256``),
so a cells CSV, an ONNX file and a ``.cvmodel`` can be matched. The hash is read from the
model's record when it was kept there (``meta["sha256"]``), else computed from its file when
that file is still there (None when it is not, or the model has no file: imported
probabilities).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cellviewer.core.store import ModelRecord


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 (hex) of a file's bytes, read a megabyte at a time (the same as
    ``trainer.engine.onnx_export.file_sha256``, which the core may not import)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelIdentity:
    id: int
    name: str
    file: str | None  # the model file's name (not its folder: that is this computer's)
    sha256: str | None


def model_identity(record: ModelRecord) -> ModelIdentity:
    """Name, file name and SHA-256 of a project's model (see the module docstring)."""
    sha = record.meta.get("sha256") if isinstance(record.meta, dict) else None
    file = Path(record.path).name if record.path else None
    if not isinstance(sha, str) and record.path:
        try:
            sha = file_sha256(record.path)
        except OSError:
            sha = None
    return ModelIdentity(int(record.id), record.name, file, sha if isinstance(sha, str) else None)
