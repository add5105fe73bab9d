"""Detector model files: the same ``.cvmodel`` container as a classifier's (a safetensors file,
``format`` ``cellviewer-model``; see ``trainer.engine.modelfile``), whose ``meta`` says
``"task": "detection"``.

Its tensors: ``model.<name>`` (the :class:`~trainer.detect.model.HeatmapUNet` state) and, in a
run's last file only, ``optim.<index>.<name>`` (the optimiser, for resuming). Its ``meta``:
``task``, ``arch`` (``heatmap_unet``), ``arch_kwargs`` (``width``, ``depth``), ``classes``
(``["cell"]``, so every reader of the container finds the field it relies on), ``detector``
(what inference needs: ``diameter_px``, ``downsample``, ``sigma_px``, ``nms_radius``,
``threshold``, ``halo``; working pixels except ``diameter_px``), ``config``, ``metrics``,
``best_metrics``, ``data``, ``n_params``, ``train_state`` (last file), and the versions.

A classifier file given to :func:`load_detector_file` is refused by name (and a detector file
given to the classifier's loader, in ``trainer.engine.modelfile``). Nothing is trusted: the
options are checked against the schema, the tensor table against a model built on the meta
device, every value must be finite, and the inference fields must be in bounds.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainer.detect import model as net
from trainer.engine import modelfile as cls_file
from trainer.formats.errors import BadModelError, ModelFileError, TrainerError
from trainer.formats.model_header import FORMAT, FORMAT_VERSION, require_task
from trainer.formats.model_schema import TASK_DETECTION

#: bounds of the inference fields (working pixels unless said)
_DETECTOR_FIELDS = {"diameter_px": (1.0, 1000.0), "downsample": (1, 32),
                    "sigma_px": (0.1, 200.0), "nms_radius": (1, 64),
                    "threshold": (0.0, 1.0), "halo": (0, 1024)}


@dataclass
class DetectorFile:
    meta: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    optimizer_state: dict | None = None
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.meta["detector"])


def save_detector_file(path: str | os.PathLike, *, state_dict: dict[str, torch.Tensor],
                       meta: dict[str, Any], optimizer_state: dict | None = None) -> Path:
    """Write atomically (a temporary file renamed over ``path``)."""
    from safetensors.torch import save_file

    from trainer import __version__

    path = Path(path)
    meta = dict(meta, task=TASK_DETECTION, arch=net.ARCH, classes=["cell"], num_classes=1)
    meta["trainer_version"] = __version__
    meta["torch_version"] = torch.__version__
    meta["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    tensors = {f"model.{k}": v for k, v in state_dict.items()}
    if optimizer_state is not None:
        opt_tensors, meta["optimizer"] = cls_file._flatten_optimizer(optimizer_state)
        tensors.update(opt_tensors)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
              "meta": json.dumps(meta, allow_nan=False, default=cls_file._json_default)}
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(tmp), metadata=header)
    os.replace(tmp, path)
    return path


def check_detector_meta(path: object, meta: dict[str, Any]) -> torch.nn.Module:
    """The checks before any tensor is read: a detector (else refused by name), a known
    architecture with options in bounds, inference fields in bounds. Returns the model built
    on the meta device (shapes only)."""
    require_task(path, meta, TASK_DETECTION)
    if meta.get("arch") != net.ARCH:
        raise TrainerError(f"{path}: detector architecture {meta.get('arch')!r} is not known "
                           f"to this trainer (known: {net.ARCH})")
    kwargs = net.SCHEMA.check(path, net.ARCH, meta.get("arch_kwargs"))
    settings = meta.get("detector")
    if not isinstance(settings, dict):
        raise BadModelError(f"{path}: damaged detector model (no 'detector' settings)")
    for key, (lo, hi) in _DETECTOR_FIELDS.items():
        v = settings.get(key)
        integer = isinstance(lo, int)
        if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)) \
                or not math.isfinite(v) or not lo <= v <= hi:
            raise BadModelError(f"{path}: detector setting {key!r} must be "
                                f"{'an integer' if integer else 'a number'} within "
                                f"{lo}..{hi}, not {v!r}")
    with torch.device("meta"):
        model = net.create(**kwargs)
    if net.count_parameters(model) > net.SCHEMA.max_params:
        raise BadModelError(f"{path}: its options make a model larger than this trainer "
                            "allows")
    if settings["halo"] < net.receptive_radius(int(kwargs.get("depth", 2))):
        raise BadModelError(f"{path}: detector halo {settings['halo']} is smaller than its "
                            "network's receptive field")
    return model


def load_detector_file(path: str | os.PathLike, with_optimizer: bool = False) -> DetectorFile:
    """Read a detector model file, trusting nothing in it (see the module doc).
    :class:`BadModelError` names the file and the problem (a classifier file: by name);
    :class:`ModelFileError` a file that is not a model."""
    path = Path(path)
    handle, meta = cls_file._open(path)
    model = check_detector_meta(path, meta)
    expected = {f"model.{k}": (tuple(v.shape), cls_file._DTYPE_NAMES.get(v.dtype, str(v.dtype)))
                for k, v in model.state_dict().items()}
    found = list(handle.keys())
    extra = [k for k in found if k not in expected and not cls_file._is_optim_key(k)]
    missing = [k for k in expected if k not in set(found)]
    if extra or missing:
        raise BadModelError(f"{path}: its tensors do not fit its detector (missing "
                            f"{missing[:3]}, unexpected {extra[:3]})")
    for key, (shape, dtype) in expected.items():
        view = handle.get_slice(key)
        got_shape, got_dtype = tuple(view.get_shape()), str(view.get_dtype())
        if got_shape != shape or not cls_file._dtype_fits(got_dtype, dtype):
            raise BadModelError(f"{path}: tensor {key} is {got_dtype} {list(got_shape)}, its "
                                f"model needs {dtype} {list(shape)}")
    state, optim = {}, {}
    try:
        for key in found:
            if key.startswith("model."):
                state[key[len("model."):]] = cls_file._finite(path, key, handle.get_tensor(key))
            elif key.startswith("optim.") and with_optimizer:
                optim[key] = cls_file._finite(path, key, handle.get_tensor(key))
    except TrainerError:
        raise
    except Exception as exc:
        raise ModelFileError(f"{path}: damaged tensor data ({exc})") from exc
    opt_state = None
    if with_optimizer and "optimizer" in meta:
        try:
            opt_state = cls_file._unflatten_optimizer(optim, meta["optimizer"])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise BadModelError(f"{path}: damaged optimiser state ({exc})") from exc
    return DetectorFile(meta, state, opt_state, path)


def build_detector(df: DetectorFile, device: torch.device | str = "cpu") -> net.HeatmapUNet:
    """The file's network with its weights, in eval mode on ``device``."""
    kwargs = net.SCHEMA.check(df.path, net.ARCH, df.meta.get("arch_kwargs"))
    model = net.create(**kwargs)
    model.load_state_dict(df.state_dict)
    return model.to(device).eval()
