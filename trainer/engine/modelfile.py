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
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from trainer.formats.errors import ModelFileError, TrainerError
from trainer.formats.model_header import FORMAT, FORMAT_VERSION, check_metadata, read_model_header
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
    path = Path(path)
    handle, meta = _open(path)
    state, optim = {}, {}
    mean = None
    try:
        for key in handle.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
            if key.startswith("model."):
                state[key[len("model."):]] = handle.get_tensor(key)
            elif key == "mean_image":
                mean = handle.get_tensor(key)
            elif key.startswith("optim.") and with_optimizer:
                optim[key] = handle.get_tensor(key)
    except Exception as exc:
        raise ModelFileError(f"{path}: damaged tensor data ({exc})") from exc
    if mean is None or tuple(mean.shape) != (3, 40, 40):
        raise ModelFileError(f"{path}: damaged CellViewer model (no (3, 40, 40) mean image)")
    if not state:
        raise ModelFileError(f"{path}: damaged CellViewer model (no weights)")
    if len(meta["classes"]) != int(meta.get("num_classes", len(meta["classes"]))):
        raise ModelFileError(f"{path}: damaged CellViewer model (class list and size differ)")
    opt_state = None
    if with_optimizer and "optimizer" in meta:
        opt_state = _unflatten_optimizer(optim, meta["optimizer"])
    return ModelFile(meta=meta, state_dict=state, mean_image=mean.float(),
                     optimizer_state=opt_state, path=path)


def build_model(mf: ModelFile, device: torch.device | str = "cpu") -> CellClassifier:
    """The model a file describes, with its weights, in eval mode on ``device``."""
    from trainer.models import create_model, list_models

    if mf.arch not in list_models():
        raise TrainerError(
            f"{mf.path}: model architecture {mf.arch!r} is not known to this trainer "
            f"(known: {', '.join(list_models())})", ErrorKind.UNKNOWN_MODEL)
    kwargs = dict(mf.meta.get("arch_kwargs", {}))
    model = create_model(mf.arch, int(mf.meta["num_classes"]), **kwargs)
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
