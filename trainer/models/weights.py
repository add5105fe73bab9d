"""Pretrained weights for the foundation backbones, from local files only.

Nothing here downloads: the machines the trainer runs on may not reach a model hub, and UNI's
licence requires each user to accept it. A user puts the files in a weights folder (the app's
settings, or the ``CELLVIEWER_WEIGHTS_DIR`` environment variable) under the names below, or
passes a file path. Files are read with safetensors or ``torch.load(weights_only=True)`` (no
pickled code runs). A missing file, or one that does not fit the backbone, raises
:class:`WeightsNotFoundError` whose message names the file expected and how to obtain it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trainer.formats.weights_files import (  # noqa: F401 (re-exported: the file-naming rule)
    HF_FILES,
    SUFFIXES,
    WEIGHTS_DIR_ENV,
)
from trainer.formats.weights_files import expected_files as _expected_files


class WeightsNotFoundError(FileNotFoundError):
    """The weights file of a foundation model is missing (the message says where it is expected
    and how a user obtains it). ``filename`` is the file expected, when one is known."""

    def __init__(self, message: str, filename: str | os.PathLike | None = None):
        super().__init__(message)
        self.message = message
        self.filename = None if filename is None else str(filename)

    def __str__(self) -> str:  # OSError's would print "[Errno None] None: filename"
        return self.message


class InvalidWeightsError(WeightsNotFoundError):
    """A weights file exists but cannot be read or does not fit the backbone."""


@dataclass(frozen=True)
class WeightsSource:
    """Where the weights of one backbone come from."""

    stem: str          # file name without suffix in the weights folder, e.g. "uni"
    title: str         # what the user knows it as
    how_to_get: str    # one sentence: where to download, what licence; "{dest}" = the target path


WEIGHTS_SOURCES: dict[str, WeightsSource] = {
    "resnetrs50": WeightsSource(
        "resnetrs50", "ResNet-RS50 (ImageNet-1k, timm resnetrs50.tf_in1k)",
        "download model.safetensors from https://huggingface.co/timm/resnetrs50.tf_in1k "
        "(Apache-2.0, no login needed) and save it as {dest}",
    ),
    "ctranspath": WeightsSource(
        "ctranspath", "CTransPath (Swin-T with a conv stem, Wang et al. 2022)",
        "download model.safetensors from "
        "https://huggingface.co/1aurent/swin_tiny_patch4_window7_224.CTransPath (GPL-3.0) and save "
        "it as {dest}; the authors' original ctranspath.pth (https://github.com/Xiyue-Wang/TransPath)"
        " also works, saved as ctranspath.pth in the same folder",
    ),
    "uni": WeightsSource(
        "uni", "UNI (ViT-L/16, Mahmood Lab)",
        "log in to Hugging Face, accept the licence (CC-BY-NC-ND 4.0, research use only) at "
        "https://huggingface.co/MahmoodLab/UNI, download pytorch_model.bin and save it as {dest}",
    ),
}


def expected_files(name: str) -> list[str]:
    """File names looked for in a weights folder for backbone ``name``, in order."""
    return _expected_files(WEIGHTS_SOURCES[name].stem if name in WEIGHTS_SOURCES else name)


def _source(name: str) -> WeightsSource:
    return WEIGHTS_SOURCES.get(name) or WeightsSource(
        name, name, "save the backbone's state dict as {dest}")


def default_file(name: str) -> str:
    """The file name we suggest a user saves the weights of ``name`` under."""
    stem = _source(name).stem
    return f"{stem}.bin" if stem == "uni" else f"{stem}.safetensors"


def _how_to(name: str, dest: Path | None) -> str:
    """How to obtain the weights of ``name``; ``dest`` is the file to save them as, or a
    folder (then the default file name in it), or None when no folder is set."""
    src = _source(name)
    if dest is None:
        target = (f"{default_file(name)} in a weights folder, then choose that folder in the "
                  f"settings or set the {WEIGHTS_DIR_ENV} environment variable to it")
    elif dest.suffix in SUFFIXES:
        target = str(dest)
    else:
        target = str(dest / default_file(name))
    return f"To get the {src.title} weights: " + src.how_to_get.format(dest=target) + "."


def find_weights(name: str, weights: str | os.PathLike | None = None) -> Path:
    """The weights file for backbone ``name``: ``weights`` if it is a file, else the first of
    :func:`expected_files` in the folder ``weights`` or, when ``weights`` is None, in the folder
    named by ``CELLVIEWER_WEIGHTS_DIR``. Raises :class:`WeightsNotFoundError` otherwise."""
    if weights is not None:
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        if not path.is_dir():
            raise WeightsNotFoundError(
                f"weights file {path} for {_source(name).title} does not exist. "
                + _how_to(name, path), filename=path)
        folder, where = path, f"the weights folder {path}"
    else:
        env = os.environ.get(WEIGHTS_DIR_ENV, "").strip()
        if not env:
            raise WeightsNotFoundError(
                f"no weights for {_source(name).title}: no weights file was given and no weights "
                f"folder is set ({WEIGHTS_DIR_ENV} is empty). Expected {expected_files(name)[0]} "
                f"or {expected_files(name)[1]}. " + _how_to(name, None))
        folder, where = Path(env).expanduser(), f"the weights folder {env} ({WEIGHTS_DIR_ENV})"
    for rel in expected_files(name):
        if (folder / rel).is_file():
            return folder / rel
    raise WeightsNotFoundError(
        f"no weights for {_source(name).title} in {where}: expected one of "
        f"{', '.join(expected_files(name))}. " + _how_to(name, folder),
        filename=folder / default_file(name))


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a weights file (safetensors, or a torch checkpoint read with
    ``weights_only=True``). Unwraps ``{"model": ...}`` / ``{"state_dict": ...}`` and a
    ``module.`` prefix (DataParallel checkpoints). Raises :class:`InvalidWeightsError` naming the
    file and the cause when it cannot be read."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: object = load_file(str(path), device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsNotFoundError(f"weights file {path} does not exist", filename=path) from None
    except Exception as exc:  # corrupt file, wrong format, pickled code refused...
        raise InvalidWeightsError(
            f"cannot read weights file {path}: {type(exc).__name__}: {exc}", filename=path) from exc
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise InvalidWeightsError(f"weights file {path} holds no state dict of tensors",
                                  filename=path)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _sample(keys: Iterable[str], n: int = 4) -> str:
    keys = list(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_backbone_weights(
    backbone: nn.Module,
    path: str | os.PathLike,
    name: str,
    ignore_prefixes: tuple[str, ...] = (),
    filter_fn: Callable[[dict, nn.Module], dict] | None = None,
) -> None:
    """Load ``path`` into ``backbone`` strictly: every parameter and buffer of the backbone must
    come from the file with the right shape. Keys of the file under ``ignore_prefixes`` (the
    pretraining classifier) and non-persistent buffers (timm's recomputed attention indices) are
    skipped; anything else that does not fit raises :class:`InvalidWeightsError` naming the file
    and what is expected."""
    sd = read_state_dict(path)
    if filter_fn is not None:
        sd = filter_fn(sd, backbone)
    own = backbone.state_dict()
    transient = {n for n, _ in backbone.named_buffers()} - set(own)
    sd = {k: v for k, v in sd.items()
          if k in own or not (k.startswith(ignore_prefixes) or k in transient
                              or k.rsplit(".", 1)[-1] in {"relative_position_index", "attn_mask"})}
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}"
             for k, v in own.items() if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors missing ({_sample(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_sample(unexpected)})")
        if wrong:
            parts.append(f"{len(wrong)} of the wrong shape ({_sample(wrong, 2)})")
        raise InvalidWeightsError(
            f"weights file {path} does not fit {_source(name).title}: {'; '.join(parts)}. "
            "Is it the right file? " + _how_to(name, Path(path).parent), filename=path)
    backbone.load_state_dict(sd, strict=False)
