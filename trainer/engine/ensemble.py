"""``python -m trainer ensemble RUN_OR_MODEL... --out MODEL.cvmodel``: several trained models
(seeds of one recipe, or different architectures) as one model file that averages their class
probabilities (:mod:`trainer.models.ensemble`), loaded by the app and the CLI like any other.

The members must agree on what a prediction means: the same classes in the same order and the
same field of view; a member that differs is refused, naming it and the difference. Members
are models trained from scratch (a foundation model's file holds only its trained part).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from trainer.engine.modelfile import EXTENSION, ModelFile, load_model_file, save_model_file
from trainer.formats.errors import BadModelError
from trainer.models.ensemble import ENSEMBLE_ARCH, MAX_MEMBERS


def resolve_member(path: str | os.PathLike) -> Path:
    """A run folder means its best model; a model file is itself."""
    p = Path(path)
    if p.is_dir():
        best = p / ("best" + EXTENSION)
        if not best.is_file():
            raise BadModelError(f"{p}: a folder without a best{EXTENSION} (not a finished run)")
        return best
    return p


def _check_members(files: list[ModelFile]) -> None:
    first = files[0]
    for mf in files:
        if mf.arch == ENSEMBLE_ARCH:
            raise BadModelError(f"{mf.path}: is an ensemble already; give its members instead")
        if mf.meta.get("partial_state"):
            raise BadModelError(f"{mf.path}: a foundation model ({mf.arch}); ensembles hold "
                                "models trained from scratch")
    for mf in files[1:]:
        if mf.classes != first.classes:
            raise BadModelError(
                f"{mf.path}: its classes ({', '.join(mf.classes)}) differ from those of "
                f"{first.path} ({', '.join(first.classes)}); members must have the same classes "
                "in the same order")
        fov, fov0 = float(mf.meta.get("fov_px", 40)), float(first.meta.get("fov_px", 40))
        if fov != fov0:
            raise BadModelError(f"{mf.path}: its field of view is {fov:g} px, that of "
                                f"{first.path} {fov0:g} px; members must see the same crops")


def make_ensemble(members: list[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Write the ensemble of ``members`` (run folders or model files) to ``out``."""
    from trainer.engine.modelfile import build_model
    from trainer.models.ensemble import build_ensemble

    if not 2 <= len(members) <= MAX_MEMBERS:
        raise ValueError(f"an ensemble needs 2 to {MAX_MEMBERS} members, got {len(members)}")
    files = [load_model_file(resolve_member(m)) for m in members]
    _check_members(files)
    specs = [{"arch": mf.arch, "arch_kwargs": dict(mf.meta.get("arch_kwargs") or {}),
              "input_mode": mf.input_mode, "source": str(mf.path)} for mf in files]
    ens = build_ensemble([build_model(mf, "cpu") for mf in files], specs)
    with torch.no_grad():
        for i, mf in enumerate(files):
            ens.means[i].copy_(mf.mean_image.reshape(3, 40, 40))
    first = files[0]
    meta = {
        "arch": ENSEMBLE_ARCH,
        "arch_kwargs": {"members": specs},
        "classes": list(first.classes),
        "num_classes": len(first.classes),
        "input_mode": "unit",
        "patch_size": 40,
        "fov_px": float(first.meta.get("fov_px", 40)),
        "partial_state": False,
        "n_params": sum(p.numel() for p in ens.parameters()),
        "members": [{"path": str(mf.path), "arch": mf.arch,
                     "metrics": mf.meta.get("metrics") or {},
                     "seed": (mf.meta.get("config") or {}).get("seed")} for mf in files],
        "data": dict(first.meta.get("data") or {}),
    }
    return save_model_file(out, state_dict=ens.state_dict(), mean_image=torch.zeros(3, 40, 40),
                           meta=meta)
