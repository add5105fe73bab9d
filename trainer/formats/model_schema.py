"""What a model file may say about its model, checked before anything is built: the options
each architecture takes (``arch_kwargs``) with their types and bounds, a cap on the parameter
count, and the bounds of the file's other fields (classes, field of view, input mode).

Standard library only (no torch): the desktop app checks a file's header in the GUI thread with
:func:`check_model_fields` (through ``model_header.check_metadata``), and each model family
declares its :class:`ArchSchema` next to its builder (``register_model(schema=...)``).

Why: a model file is data from anyone. Its ``arch_kwargs`` become the builder's arguments, so an
unchecked ``dim`` or ``hidden`` width makes a 4 MB file allocate gigabytes, and its field of view
becomes the size of every crop. The bounds come from the catalogue's models
(``trainer.formats.catalog``) with headroom (about 4x their widths, depths and parameter counts)
so that a reasonable variant trains and loads, and a crafted one is refused with a message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from trainer.formats.errors import BadModelError

#: the most classes a model may have (the app's projects have tens; this only bounds the head)
MAX_CLASSES = 1000
#: the field of view (in image pixels) a model file may ask for: each crop is fov x fov pixels
FOV_PX_MIN = 1.0
FOV_PX_MAX = 1024.0
PATCH_SIZE = 40
INPUT_MODES = ("whitened", "unit")
#: what a model file's model does (``meta["task"]``; a file without the field is a classifier,
#: as every file was before detectors existed). Each loader refuses the other kind by name.
TASK_CLASSIFICATION = "classification"
TASK_DETECTION = "detection"
TASKS = (TASK_CLASSIFICATION, TASK_DETECTION)
#: the parameter cap of a registered model that declares none (a plug-in)
DEFAULT_MAX_PARAMS = 50_000_000
#: bounds of a free-form option mapping (a foundation backbone's timm options)
_MAPPING_MAX_KEYS = 32
_MAPPING_MAX_DEPTH = 3
_MAPPING_MAX_INT = 4096
_MAPPING_MAX_LIST = 64
_MAX_TEXT = 4096


@dataclass(frozen=True)
class Option:
    """One ``arch_kwargs`` option: ``kind`` is ``"int"``, ``"float"``, ``"bool"``, ``"str"``,
    ``"ints"`` (a list of ints) or ``"mapping"`` (a JSON object of bounded plain values);
    ``lo``/``hi`` bound a number (each element of ``"ints"``), ``min_len``/``max_len`` a list's
    or a string's length; ``choices`` lists the allowed values (of each element for ``ints``);
    ``nullable``: None is allowed."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    min_len: int = 0
    max_len: int = _MAX_TEXT
    choices: tuple[Any, ...] = ()
    nullable: bool = False

    def check(self, value: Any) -> str | None:
        """Why ``value`` is not allowed, or None when it is."""
        if value is None:
            return None if self.nullable else "must not be null"
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"must be true or false, not {value!r}"
        if self.kind == "int":
            return _check_number(value, self.lo, self.hi, self.choices, integer=True)
        if self.kind == "float":
            return _check_number(value, self.lo, self.hi, self.choices, integer=False)
        if self.kind == "str":
            if not isinstance(value, str):
                return f"must be a string, not {type(value).__name__}"
            if not self.min_len <= len(value) <= self.max_len:
                return f"must have {self.min_len} to {self.max_len} characters"
            if self.choices and value not in self.choices:
                return f"must be one of {', '.join(map(repr, self.choices))}, not {value!r}"
            return None
        if self.kind == "ints":
            if not isinstance(value, (list, tuple)):
                return f"must be a list of integers, not {type(value).__name__}"
            if not self.min_len <= len(value) <= self.max_len:
                n = (f"{self.min_len}" if self.min_len == self.max_len
                     else f"{self.min_len} to {self.max_len}")
                return f"must have {n} values, not {len(value)}"
            for i, v in enumerate(value):
                why = _check_number(v, self.lo, self.hi, self.choices, integer=True)
                if why:
                    return f"value {i + 1} {why}"
            return None
        if self.kind == "mapping":
            return _check_mapping(value, 1)
        raise ValueError(f"unknown option kind {self.kind!r}")  # a schema's own mistake


def Int(lo: int, hi: int, *, choices: tuple[int, ...] = (), nullable: bool = False) -> Option:
    return Option("int", lo, hi, choices=choices, nullable=nullable)


def Float(lo: float, hi: float) -> Option:
    return Option("float", lo, hi)


def Ints(lo: int, hi: int, min_len: int, max_len: int,
         choices: tuple[int, ...] = ()) -> Option:
    return Option("ints", lo, hi, min_len=min_len, max_len=max_len, choices=choices)


def Text(max_len: int = _MAX_TEXT, *, choices: tuple[str, ...] = (),
         nullable: bool = False) -> Option:
    return Option("str", min_len=1, max_len=max_len, choices=choices, nullable=nullable)


def Bool() -> Option:
    return Option("bool")


def OptionMap(nullable: bool = True) -> Option:
    return Option("mapping", nullable=nullable)


DROPOUT = Float(0.0, 1.0)


@dataclass(frozen=True)
class ArchSchema:
    """What a model file of one architecture may hold: its ``arch_kwargs`` options (any other
    key is refused) and ``max_params``, the most parameters (and buffer elements) its model may
    have, checked on a model built on torch's meta device (shapes without memory)."""

    options: Mapping[str, Option] = field(default_factory=lambda: MappingProxyType({}))
    max_params: int = DEFAULT_MAX_PARAMS

    def check(self, where: object, arch: str, kwargs: object) -> dict[str, Any]:
        """``kwargs`` as a dict when every key is a known option with an allowed value;
        :class:`BadModelError` naming ``where``, the option and why otherwise."""
        if kwargs is None:
            return {}
        if not isinstance(kwargs, dict):
            raise BadModelError(f"{where}: arch_kwargs must be a JSON object, not "
                                f"{type(kwargs).__name__}")
        unknown = sorted(str(k) for k in kwargs if k not in self.options)
        if unknown:
            known = ", ".join(self.options) or "none"
            raise BadModelError(
                f"{where}: model {arch!r} has no option {', '.join(unknown)[:200]} "
                f"(its options: {known})")
        for key, value in kwargs.items():
            why = self.options[key].check(value)
            if why:
                raise BadModelError(f"{where}: {arch} option {key!r} {why} "
                                    f"(value {_short(value)})")
        return dict(kwargs)


def schema_for_catalog(params: int, options: Mapping[str, Option], factor: float = 4.0
                       ) -> ArchSchema:
    """A schema whose parameter cap is ``factor`` x the catalogue's count for the model."""
    return ArchSchema(MappingProxyType(dict(options)), int(params * factor))


def check_model_fields(where: object, meta: Mapping[str, Any]) -> None:
    """The fields of a model file's ``meta`` every reader relies on, beyond ``arch`` and
    ``classes``: the class count, the field of view, the patch size, the input mode, and the
    types of ``arch_kwargs`` and ``partial_state``. :class:`BadModelError` otherwise."""
    classes = meta.get("classes") or []
    if len(classes) > MAX_CLASSES:
        raise BadModelError(f"{where}: {len(classes)} classes (at most {MAX_CLASSES})")
    if "num_classes" in meta:
        k = meta["num_classes"]
        if isinstance(k, bool) or not isinstance(k, int) or k != len(classes):
            raise BadModelError(f"{where}: damaged CellViewer model (num_classes {_short(k)} "
                                f"but {len(classes)} class names)")
    if "fov_px" in meta:
        why = _check_number(meta["fov_px"], FOV_PX_MIN, FOV_PX_MAX, (), integer=False)
        if why:
            raise BadModelError(f"{where}: the field of view fov_px {why} "
                                f"(value {_short(meta['fov_px'])})")
    if "patch_size" in meta and (meta["patch_size"] != PATCH_SIZE
                                 or isinstance(meta["patch_size"], bool)):
        raise BadModelError(f"{where}: patch_size must be {PATCH_SIZE}, not "
                            f"{_short(meta['patch_size'])}")
    if "input_mode" in meta and meta["input_mode"] not in INPUT_MODES:
        raise BadModelError(f"{where}: input_mode must be one of {', '.join(INPUT_MODES)}, not "
                            f"{_short(meta['input_mode'])}")
    if "task" in meta and meta["task"] not in TASKS:
        raise BadModelError(f"{where}: task must be one of {', '.join(TASKS)}, not "
                            f"{_short(meta['task'])}")
    if meta.get("arch_kwargs") is not None and not isinstance(meta["arch_kwargs"], dict):
        raise BadModelError(f"{where}: arch_kwargs must be a JSON object")
    if "partial_state" in meta and not isinstance(meta["partial_state"], bool):
        raise BadModelError(f"{where}: partial_state must be true or false")


# ---- helpers ----------------------------------------------------------------------------------
def _check_number(value: Any, lo: float | None, hi: float | None, choices: tuple[Any, ...],
                  integer: bool) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be {'an integer' if integer else 'a number'}, not {type(value).__name__}"
    if integer and not isinstance(value, int):
        return "must be an integer"
    if not math.isfinite(value):
        return "must be a finite number"
    if choices and value not in choices:
        return f"must be one of {', '.join(map(str, choices))}"
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return f"must be within {lo:g}..{hi:g}"
    return None


def _check_mapping(value: Any, depth: int) -> str | None:
    """A free-form option object (timm's options of a foundation backbone): plain JSON values,
    integers at most 4096 in size, lists of at most 64, 32 keys, 3 levels. The meta-device build
    and the parameter cap judge what the options mean."""
    if not isinstance(value, dict):
        return f"must be a JSON object, not {type(value).__name__}"
    if depth > _MAPPING_MAX_DEPTH:
        return "is nested too deeply"
    if len(value) > _MAPPING_MAX_KEYS:
        return f"has more than {_MAPPING_MAX_KEYS} keys"
    for key, item in value.items():
        why = _check_plain(item, depth)
        if why:
            return f"{key!r} {why}"
    return None


def _check_plain(item: Any, depth: int) -> str | None:
    if item is None or isinstance(item, bool):
        return None
    if isinstance(item, int):
        return None if abs(item) <= _MAPPING_MAX_INT else f"must be within ±{_MAPPING_MAX_INT}"
    if isinstance(item, float):
        return None if math.isfinite(item) and abs(item) <= _MAPPING_MAX_INT \
            else f"must be a finite number within ±{_MAPPING_MAX_INT}"
    if isinstance(item, str):
        return None if len(item) <= 200 else "is too long"
    if isinstance(item, (list, tuple)):
        if len(item) > _MAPPING_MAX_LIST:
            return f"has more than {_MAPPING_MAX_LIST} values"
        for v in item:
            if isinstance(v, (list, tuple, dict)):
                return "must be a flat list"
            why = _check_plain(v, depth)
            if why:
                return why
        return None
    if isinstance(item, dict):
        return _check_mapping(item, depth + 1)
    return f"is a {type(item).__name__}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
