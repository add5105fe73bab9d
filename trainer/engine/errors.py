"""Errors the trainer reports as ``error`` events: each carries an :class:`ErrorKind` and a
message a user can act on (what went wrong, which file, what to do)."""

from __future__ import annotations

from trainer.protocol import ErrorKind


class TrainerError(Exception):
    """An error with a user-facing message and a protocol ``kind``."""

    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(self, message: str, kind: ErrorKind | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class ModelFileError(TrainerError):
    """A model file is missing, corrupt, or not a CellViewer model; the message names it."""

    kind = ErrorKind.BAD_MODEL_FILE


def classify_exception(exc: BaseException) -> tuple[ErrorKind, str]:
    """The protocol kind and a user-facing message for any exception a run may raise."""
    import torch

    if isinstance(exc, TrainerError):
        return exc.kind, str(exc)
    if isinstance(exc, torch.OutOfMemoryError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
        return ErrorKind.OUT_OF_MEMORY, (
            f"The device ran out of memory ({first[:200]}). Use a smaller batch size "
            "(--batch-size, e.g. half of this run's), close other programs using the GPU, "
            "or train on another device."
        )
    # by class name along the MRO: no import of the data and model packages needed here
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "PatchSetError" in names:
        return ErrorKind.BAD_PATCHSET, f"Bad patch set: {exc}"
    if "WeightsNotFoundError" in names:
        return ErrorKind.MISSING_WEIGHTS, str(exc)
    if "UnknownModelError" in names:
        return ErrorKind.UNKNOWN_MODEL, str(exc)
    if "ConfigError" in names:
        return ErrorKind.BAD_CONFIG, str(exc)
    return ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}"
