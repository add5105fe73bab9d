"""Starting a run from a saved model's weights (``RunConfig.init_from``).

This is the active-learning loop: predict, correct the labels, retrain from the model you have
rather than from random weights. The file must hold the same architecture with the same model
options. Its class-specific rows are carried over by class name: the rows of every ``head.*``
tensor whose first dimension is the class count. Classes new to this run keep the model's fresh
initialisation, and classes the old model knew that this run lacks are dropped. Everything else
loads as it is.

The whitening mean image is the new run's own (computed from its training data as usual): the
network adapts to the small shift during fine-tuning, and the run's files stay consistent with
its data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from trainer.engine.modelfile import ModelFile, load_model_file
from trainer.formats.config import ConfigError


@dataclass
class InitReport:
    """What starting from ``path`` carried over."""

    path: Path
    matched: list[str] = field(default_factory=list)  # classes whose head rows were copied
    new: list[str] = field(default_factory=list)  # classes of this run the file did not know
    dropped: list[str] = field(default_factory=list)  # classes of the file this run lacks

    def describe(self) -> str:
        parts = [f"starting from {self.path}: {len(self.matched)} of "
                 f"{len(self.matched) + len(self.new)} classes carried over"]
        if self.new:
            parts.append("new (fresh weights): " + ", ".join(self.new))
        if self.dropped:
            parts.append("dropped: " + ", ".join(self.dropped))
        return "; ".join(parts)


def load_init_file(path: str | Path, arch: str) -> ModelFile:
    """The model file to start from, refused (``ConfigError`` naming it) when it holds
    another architecture; ``ModelFileError`` when it is missing, corrupt or not a model."""
    mf = load_model_file(path)
    if mf.arch != arch:
        raise ConfigError(f"{path}: is a {mf.arch!r} model; a run can only start from a model "
                          f"of its own architecture ({arch!r})")
    return mf


def apply_initial_weights(model: torch.nn.Module, mf: ModelFile, classes: list[str], *,
                          partial: bool = False) -> InitReport:
    """Load ``mf``'s weights into ``model`` (built for ``classes``), head rows by class name.

    ``partial``: the file holds only the trainable part (foundation models), so missing keys
    are expected. A tensor of another shape means other model options: refused, naming it."""
    old = mf.classes
    where = {name: i for i, name in enumerate(old)}
    report = InitReport(Path(mf.path or "model file"),
                        matched=[c for c in classes if c in where],
                        new=[c for c in classes if c not in where],
                        dropped=[c for c in old if c not in set(classes)])
    own = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    for key, tensor in mf.state_dict.items():
        if key not in own:
            raise ConfigError(f"{report.path}: holds {key!r}, which this run's "
                              f"{mf.arch!r} model does not have (other model options?)")
        target = own[key]
        if key.startswith("head.") and tensor.ndim >= 1 and tensor.shape[0] == len(old) \
                and target.shape[0] == len(classes) and tensor.shape[1:] == target.shape[1:]:
            rows = target.detach().clone()
            for i, name in enumerate(classes):
                if name in where:
                    rows[i] = tensor[where[name]]
            tensor = rows
        if tensor.shape != target.shape:
            raise ConfigError(
                f"{report.path}: its {key} is {tuple(tensor.shape)}, this run's model has "
                f"{tuple(target.shape)}: the model options differ (file: "
                f"{mf.meta.get('arch_kwargs', {})})")
        state[key] = tensor
    missing = sorted(set(own) - set(state))
    if missing and not partial:
        raise ConfigError(f"{report.path}: lacks {len(missing)} of the model's tensors "
                          f"(first: {missing[0]!r}); it was not written for this model")
    model.load_state_dict(state, strict=not partial)
    return report
