"""Every exception a run may raise gets the protocol kind a reader reacts to, and a message."""

from __future__ import annotations

import pytest
import torch

from trainer.formats.catalog import UnknownModelError
from trainer.formats.config import ConfigError
from trainer.formats.errors import (
    BadModelError,
    ModelFileError,
    TrainerError,
    classify_exception,
)
from trainer.formats.patchset import PatchSetError
from trainer.formats.protocol import ErrorKind
from trainer.models.weights import InvalidWeightsError, WeightsNotFoundError


@pytest.mark.parametrize(("exc", "kind", "message"), [
    (ModelFileError("a.cvmodel: not a file"), ErrorKind.BAD_MODEL_FILE, "a.cvmodel: not a file"),
    (BadModelError("a.cvmodel: NaN weights"), ErrorKind.BAD_MODEL, "a.cvmodel: NaN weights"),
    (TrainerError("no GPU", ErrorKind.DEVICE), ErrorKind.DEVICE, "no GPU"),
    (TrainerError("odd"), ErrorKind.INTERNAL, "odd"),
    (PatchSetError("x.patches: no meta.json"), ErrorKind.BAD_PATCHSET,
     "Bad patch set: x.patches: no meta.json"),
    (WeightsNotFoundError("put uni.safetensors in W"), ErrorKind.MISSING_WEIGHTS,
     "put uni.safetensors in W"),
    (InvalidWeightsError("uni.bin does not fit"), ErrorKind.MISSING_WEIGHTS,
     "uni.bin does not fit"),
    (UnknownModelError("unknown model 'vit'"), ErrorKind.UNKNOWN_MODEL, "unknown model 'vit'"),
    (ConfigError("run.json: epochs must be..."), ErrorKind.BAD_CONFIG,
     "run.json: epochs must be..."),
    (KeyError("boom"), ErrorKind.INTERNAL, "KeyError: 'boom'"),
])
def test_kinds_and_messages(exc, kind, message):
    assert classify_exception(exc) == (kind, message)


def test_torch_out_of_memory_is_recognised_without_importing_torch_here():
    kind, message = classify_exception(
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail"))
    assert kind is ErrorKind.OUT_OF_MEMORY
    assert "(CUDA out of memory. Tried to allocate 2.00 GiB)" in message
    assert "--batch-size" in message and "more detail" not in message
