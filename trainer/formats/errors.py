"""Errors the trainer reports as ``error`` events: each carries an :class:`ErrorKind` (the
protocol's ``kind``) and a message a user can act on (what went wrong, which file, what to do).

Standard library only: the desktop app catches :class:`ModelFileError` from
``trainer.formats.model_header`` without importing torch. Exceptions of other packages (torch's
out-of-memory error, the data and model packages' errors) are recognised by class name, so
this module imports none of them.
"""

from __future__ import annotations

from trainer.formats.protocol import ErrorKind


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


class BadModelError(ModelFileError):
    """A model file that reads but cannot be trusted: an ``arch_kwargs`` option or the field of
    view out of its architecture's bounds, a tensor missing, extra or of the wrong shape or
    dtype, a value that is not finite. Refused before the model is built (nothing large is
    allocated); the message names the file and the first problem."""

    kind = ErrorKind.BAD_MODEL


# Exception class names (anywhere in the exception's MRO) and the kind each is reported as.
# torch.OutOfMemoryError (torch.cuda.OutOfMemoryError) gets its own message below.
_KIND_BY_CLASS_NAME: tuple[tuple[str, ErrorKind], ...] = (
    ("PatchSetError", ErrorKind.BAD_PATCHSET),
    ("WeightsNotFoundError", ErrorKind.MISSING_WEIGHTS),
    ("UnknownModelError", ErrorKind.UNKNOWN_MODEL),
    ("ConfigError", ErrorKind.BAD_CONFIG),
)


def classify_exception(exc: BaseException) -> tuple[ErrorKind, str]:
    """The protocol kind and a user-facing message for any exception a run may raise."""
    if isinstance(exc, TrainerError):
        return exc.kind, str(exc)
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "OutOfMemoryError" in names:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
        return ErrorKind.OUT_OF_MEMORY, (
            f"The device ran out of memory ({first[:200]}). Use a smaller batch size "
            "(--batch-size, e.g. half of this run's), close other programs using the GPU, "
            "or train on another device."
        )
    for name, kind in _KIND_BY_CLASS_NAME:
        if name in names:
            prefix = "Bad patch set: " if kind is ErrorKind.BAD_PATCHSET else ""
            return kind, f"{prefix}{exc}"
    return ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}"
