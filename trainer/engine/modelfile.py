"""Model files (``*.cvmodel``): everything prediction needs, in one file that is safe to open.

A model file is a **safetensors** file (loading it reads tensors and JSON, never executes
code, so a model shared by a colleague is safe to open). Its tensors:

- ``model.<name>``: the model's ``state_dict`` (for foundation models only the tensors of the
  trained modules: the frozen backbone comes from its own weights file, named in the
  metadata, and is not copied into every model);
- ``mean_image``: float32 (3, 40, 40), the training mean image in [0, 1] that whitening
  subtracts (stored for every model; applied only when ``input_mode`` is ``"whitened"``);
- ``optim.<param index>.<name>``: the optimiser state, in the *last* model of a run only, so the
  run can be resumed exactly.

Its safetensors metadata holds ``format`` (``"cellviewer-model"``), ``format_version`` and
``meta``, a JSON object: ``arch``, ``arch_kwargs`` (the ``create_model`` overrides),
``num_classes``, ``classes``, ``input_mode``, ``patch_size``, ``fov_px``, ``partial_state``,
``config`` (the resolved run configuration), ``metrics`` (validation metrics of this model),
``best_metrics``, ``n_params``, ``data`` (the data that trained it: ``n_train``,
``n_train_augmented``, ``n_val``, ``flag_limit``, ``kept_classes``, ``excluded_classes``,
``patchset``, ``val_patchset``, ``epochs_run``), ``train_state`` (last model only: epoch, step,
early-stopping state; for resuming), ``optimizer`` (its param groups, when saved),
``trainer_version``, ``torch_version``, ``created``.

Fields are only ever added within a format version: a reader uses ``meta.get`` for anything
but ``arch`` and ``classes`` (``data`` is absent from files written before it existed).

Nothing in a file is trusted: :func:`load_model_file` checks the fields against the bounds of
``trainer.formats.model_schema`` and the architecture's own schema (``register_model(schema=)``),
works out the tensors the model must have on torch's meta device (no memory), compares the
file's tensor table with them before reading any data, and refuses non-finite values, all
with :class:`BadModelError` (kind ``bad-model``) naming the file. A crafted file therefore
cannot make the reader allocate more than its own size, nor predict from random weights.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from trainer.formats.errors import BadModelError, ModelFileError, TrainerError
from trainer.formats.model_header import (
    FORMAT,
    FORMAT_VERSION,
    check_metadata,
    read_model_header,
    require_task,
)
from trainer.formats.model_schema import TASK_CLASSIFICATION
from trainer.formats.protocol import ErrorKind

if TYPE_CHECKING:
    from trainer.models.layers import CellClassifier

EXTENSION = ".cvmodel"


@dataclass
class ModelFile:
    meta: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    mean_image: torch.Tensor  # (3, 40, 40) float32
    optimizer_state: dict | None = None
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return self.meta["arch"]

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def input_mode(self) -> str:
        return self.meta.get("input_mode", "whitened")


# ---- optimiser state <-> flat tensors + JSON --------------------------------------------------
def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = value
    groups = []
    for g in state["param_groups"]:
        groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()
                       if isinstance(v, (int, float, bool, str, list, tuple, type(None)))})
    return tensors, {"param_groups": groups, "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], info: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, entries in info.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(entries)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()}
              for g in info["param_groups"]]
    return {"state": state, "param_groups": groups}


# ---- writing ----------------------------------------------------------------------------------
def save_model_file(
    path: str | os.PathLike,
    *,
    state_dict: dict[str, torch.Tensor],
    mean_image: torch.Tensor,
    meta: dict[str, Any],
    optimizer_state: dict | None = None,
) -> Path:
    """Write atomically (a temporary file renamed over ``path``), so a reader (or a crash)
    never sees half a model."""
    from safetensors.torch import save_file

    from trainer import __version__

    path = Path(path)
    for key in ("arch", "classes"):
        if key not in meta:
            raise ValueError(f"model file meta needs {key!r}")
    tensors: dict[str, torch.Tensor] = {}
    for name, t in state_dict.items():
        tensors[f"model.{name}"] = t
    tensors["mean_image"] = mean_image.float().reshape(3, 40, 40)
    meta = dict(meta)
    meta.setdefault("num_classes", len(meta["classes"]))
    meta.setdefault("patch_size", 40)
    meta.setdefault("input_mode", "whitened")
    meta["trainer_version"] = __version__
    meta["torch_version"] = torch.__version__
    meta["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if optimizer_state is not None:
        opt_tensors, meta["optimizer"] = _flatten_optimizer(optimizer_state)
        tensors.update(opt_tensors)
    # safetensors wants contiguous CPU tensors that share no memory.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
              "meta": json.dumps(meta, allow_nan=False, default=_json_default)}
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(tmp), metadata=header)
    os.replace(tmp, path)
    return path


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# ---- reading ----------------------------------------------------------------------------------
def _open(path: Path):
    from safetensors import safe_open

    if not path.exists():
        raise ModelFileError(f"{path}: model file not found")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a file")
    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
    except Exception as exc:  # safetensors raises its own error type for every corruption
        raise ModelFileError(
            f"{path}: not a CellViewer model file (cannot read it as safetensors: {exc})"
        ) from exc
    return handle, check_metadata(path, handle.metadata() or {})


def read_model_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata only (reads the header, not the weights): for listing models quickly."""
    return read_model_header(path)


def load_model_file(path: str | os.PathLike, with_optimizer: bool = False) -> ModelFile:
    """Read a model file, trusting nothing in it: its fields are checked against its
    architecture's schema (:func:`expected_tensors`: options and field of view in bounds, the
    parameter count under the cap, the tensors it must hold from a model built on the meta
    device) and its tensor table (names, shapes, dtypes) against that, before any tensor data
    is read; then every value must be finite. :class:`BadModelError` (kind ``bad-model``)
    names the file and the problem; :class:`ModelFileError` a file that is not a model."""
    path = Path(path)
    handle, meta = _open(path)
    require_task(path, meta, TASK_CLASSIFICATION)  # a detector is refused by name
    expected = expected_tensors(path, meta)
    _check_tensor_table(path, handle, expected)
    state, optim = {}, {}
    mean = None
    try:
        for key in handle.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
            if key.startswith("model."):
                state[key[len("model."):]] = _finite(path, key, handle.get_tensor(key))
            elif key == "mean_image":
                mean = _finite(path, key, handle.get_tensor(key))
            elif key.startswith("optim.") and with_optimizer:
                optim[key] = _finite(path, key, handle.get_tensor(key))
    except TrainerError:
        raise
    except Exception as exc:
        raise ModelFileError(f"{path}: damaged tensor data ({exc})") from exc
    assert mean is not None  # _check_tensor_table made sure the file holds it
    opt_state = None
    if with_optimizer and "optimizer" in meta:
        try:
            opt_state = _unflatten_optimizer(optim, meta["optimizer"])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise BadModelError(f"{path}: damaged optimiser state ({exc})") from exc
    return ModelFile(meta=meta, state_dict=state, mean_image=mean.float(),
                     optimizer_state=opt_state, path=path, extra={"checked": True})


# ---- checking a file against its architecture -------------------------------------------------
#: the floating-point dtypes (safetensors' names) a file may store a float tensor in: loading
#: casts them to the model's (the demo model is stored in float16, half the size)
_FLOAT_NAMES = frozenset({"F16", "BF16", "F32", "F64"})
#: safetensors' dtype names of the tensor dtypes a model holds
_DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                torch.float64: "F64", torch.int64: "I64", torch.int32: "I32",
                torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}


def expected_tensors(path: object, meta: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
    """The tensors (name -> (shape, safetensors dtype)) a model file with ``meta`` must hold,
    ``model.<name>`` and ``mean_image``, worked out without allocating: the options are checked
    against the architecture's schema (``ModelSpec.schema``) first, then the model is built on
    torch's meta device (shapes, no memory) and its size checked against the schema's cap.
    Raises :class:`BadModelError` (or a ``TrainerError`` of kind ``unknown-model``)."""
    from trainer.models import list_models
    from trainer.models.ensemble import ENSEMBLE_ARCH

    arch = meta["arch"]
    if arch == ENSEMBLE_ARCH:
        ens = _ensemble_model(path, len(meta["classes"]), meta.get("arch_kwargs"), meta=True)
        out = {f"model.{k}": (tuple(v.shape), _DTYPE_NAMES.get(v.dtype, str(v.dtype)))
               for k, v in ens.state_dict().items()}
        out["mean_image"] = ((3, 40, 40), "F32")
        return out
    if arch not in list_models():
        raise TrainerError(
            f"{path}: model architecture {arch!r} is not known to this trainer "
            f"(known: {', '.join(list_models())})", ErrorKind.UNKNOWN_MODEL)
    model = check_model_options(path, arch, len(meta["classes"]), meta.get("arch_kwargs"))
    partial = bool(meta.get("partial_state", False))
    state = trainable_state_dict(model) if partial else model.state_dict()
    out = {f"model.{k}": (tuple(v.shape), _DTYPE_NAMES.get(v.dtype, str(v.dtype)))
           for k, v in state.items()}
    out["mean_image"] = ((3, 40, 40), "F32")
    return out


def _ensemble_model(where: object, num_classes: int, kwargs: object, meta: bool):
    """An ensemble file's model: each member's architecture known and trained from scratch,
    its options within its schema (checked on the meta device); built on the meta device
    (shapes only) or for real."""
    from trainer.models import create_model, list_models, model_spec
    from trainer.models.ensemble import build_ensemble, member_specs

    specs = member_specs(where, kwargs)
    members = []
    for i, m in enumerate(specs):
        if m["arch"] not in list_models():
            raise TrainerError(f"{where}: ensemble member {i + 1}: model architecture "
                               f"{m['arch']!r} is not known to this trainer",
                               ErrorKind.UNKNOWN_MODEL)
        if model_spec(m["arch"]).kind != "scratch":
            raise BadModelError(f"{where}: ensemble member {i + 1} ({m['arch']}) is a "
                                "foundation model; ensembles hold models trained from scratch")
        options = m.get("arch_kwargs") or {}
        members.append(check_model_options(where, m["arch"], num_classes, options) if meta
                       else create_model(m["arch"], num_classes, **options))
    return build_ensemble(members, specs)


def check_model_options(where: object, arch: str, num_classes: int,
                        kwargs: object) -> torch.nn.Module:
    """Model ``arch`` with ``kwargs`` for ``num_classes`` classes, built on the meta device
    (shapes, no memory) once the options passed the architecture's schema, and its size
    (parameters and buffer elements) within the schema's cap. :class:`BadModelError` naming
    ``where`` otherwise. The trainer checks a run's options with it too, so every model file
    it writes is one it can load."""
    from trainer.models import model_spec

    spec = model_spec(arch)
    options = spec.schema.check(where, arch, kwargs)
    model = _meta_model(where, arch, spec.kind, num_classes, options)
    size = sum(t.numel() for t in model.parameters()) + sum(t.numel() for t in model.buffers())
    if size > spec.schema.max_params:
        raise BadModelError(
            f"{where}: its options ({_options(options)}) make a {arch} model of {size:,} "
            f"parameters, more than the {spec.schema.max_params:,} this trainer allows for it")
    return model


def _meta_model(path: object, arch: str, kind: str, num_classes: int,
                kwargs: dict[str, Any]) -> torch.nn.Module:
    from trainer.models import create_model

    build = dict(kwargs)
    if kind == "foundation":  # shapes only: never look for or read the backbone's weights
        build.pop("weights", None)
        build["pretrained"] = False
    try:
        with torch.device("meta"):
            return create_model(arch, num_classes, **build)
    except Exception as exc:  # options within bounds that still do not make a model
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BadModelError(f"{path}: its options ({_options(kwargs)}) do not make a "
                            f"{arch} model ({first})") from exc


def _check_tensor_table(path: Path, handle: Any,
                        expected: dict[str, tuple[tuple[int, ...], str]]) -> None:
    """Every expected tensor present with its shape and dtype (a float one in any float dtype)
    and no other (but the optimiser state, ``optim.<index>.<name>``), read from the file's
    header: no tensor data is read."""
    found = list(handle.keys())
    extra = [k for k in found if k not in expected and not _is_optim_key(k)]
    if extra:
        raise BadModelError(f"{path}: holds tensors its model does not have "
                            f"({', '.join(sorted(extra)[:3])}{', ...' if len(extra) > 3 else ''})")
    missing = [k for k in expected if k not in set(found)]
    if missing:
        what = "no (3, 40, 40) mean image" if missing == ["mean_image"] else (
            f"lacks {len(missing)} of its model's {len(expected) - 1} weight tensors "
            f"(first: {missing[0]})")
        raise BadModelError(f"{path}: damaged CellViewer model ({what})")
    for key, (shape, dtype) in expected.items():
        try:
            view = handle.get_slice(key)
            got_shape, got_dtype = tuple(view.get_shape()), str(view.get_dtype())
        except Exception as exc:
            raise ModelFileError(f"{path}: damaged tensor data ({exc})") from exc
        if got_shape != shape or not _dtype_fits(got_dtype, dtype):
            raise BadModelError(f"{path}: tensor {key} is {got_dtype} {list(got_shape)}, its "
                                f"model needs {dtype} {list(shape)}")


def _dtype_fits(got: str, expected: str) -> bool:
    """A float tensor may be stored in any float dtype; any other must be stored as it is."""
    return got == expected or (got in _FLOAT_NAMES and expected in _FLOAT_NAMES)


def _is_optim_key(key: str) -> bool:
    parts = key.split(".", 2)
    return len(parts) == 3 and parts[0] == "optim" and parts[1].isdigit() and bool(parts[2])


def _finite(path: Path, key: str, tensor: torch.Tensor) -> torch.Tensor:
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise BadModelError(f"{path}: tensor {key} holds {bad:,} values that are not finite "
                            "numbers (NaN or infinite): the model cannot be used")
    return tensor


def _options(kwargs: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "the defaults"
    return text if len(text) <= 160 else text[:157] + "..."


def build_model(mf: ModelFile, device: torch.device | str = "cpu") -> CellClassifier:
    """The model a file describes, with its weights, in eval mode on ``device``. A
    :class:`ModelFile` not read by :func:`load_model_file` is checked here first (its options
    and tensors against its architecture, its values finite), so no unchecked options reach
    a builder."""
    from trainer.models import create_model
    from trainer.models.ensemble import ENSEMBLE_ARCH

    if not mf.extra.get("checked"):
        check_model_file(mf)
    kwargs = dict(mf.meta.get("arch_kwargs") or {})
    k = int(mf.meta.get("num_classes", len(mf.classes)))
    if mf.arch == ENSEMBLE_ARCH:
        model = _ensemble_model(mf.path or "model file", k, kwargs, meta=False)
    else:
        model = create_model(mf.arch, k, **kwargs)
    strict = not mf.meta.get("partial_state", False)
    try:
        missing, unexpected = model.load_state_dict(mf.state_dict, strict=strict)
    except RuntimeError as exc:
        raise ModelFileError(f"{mf.path}: weights do not fit architecture {mf.arch!r} "
                             f"({str(exc).splitlines()[0]})") from exc
    if unexpected:
        raise ModelFileError(f"{mf.path}: weights do not fit architecture {mf.arch!r} "
                             f"(unexpected {unexpected[:3]})")
    return model.to(device).eval()


def check_model_file(mf: ModelFile) -> None:
    """The checks of :func:`load_model_file` for a :class:`ModelFile` made in memory."""
    where = mf.path or "model file"
    meta = check_metadata(Path(str(where)), {"format": FORMAT, "meta": json.dumps(
        mf.meta, default=_json_default)})
    expected = expected_tensors(where, meta)
    tensors = {f"model.{k}": v for k, v in mf.state_dict.items()}
    tensors["mean_image"] = mf.mean_image
    extra = sorted(set(tensors) - set(expected))
    missing = sorted(set(expected) - set(tensors))
    if extra or missing:
        raise BadModelError(f"{where}: its tensors do not fit its model (missing "
                            f"{missing[:3]}, unexpected {extra[:3]})")
    for key, (shape, dtype) in expected.items():
        t = tensors[key]
        if tuple(t.shape) != shape or not _dtype_fits(_DTYPE_NAMES.get(t.dtype, ""), dtype):
            raise BadModelError(f"{where}: tensor {key} is {t.dtype} {list(t.shape)}, its "
                                f"model needs {dtype} {list(shape)}")
        _finite(Path(str(where)), key, t)
    mf.extra["checked"] = True


def trainable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state of the modules that own a trainable parameter (their buffers too, e.g. the
    running statistics of a fine-tuned stage): what a foundation model's file must keep."""
    owners = {name.rsplit(".", 1)[0] if "." in name else ""
              for name, p in model.named_parameters() if p.requires_grad}
    out = {}
    for key, value in model.state_dict().items():
        owner = key.rsplit(".", 1)[0] if "." in key else ""
        if owner in owners:
            out[key] = value
    return out
