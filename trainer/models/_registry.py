"""The model registry: every architecture the trainer can build, by name.

A family module registers a builder with :func:`register_model` (timm-style decorator); the
study's training defaults for that name come from the one table in ``defaults.py`` so the
training loop reads them from :func:`model_spec` and never hard-codes them.

``create_model(name, num_classes, **overrides)`` builds a model; overrides replace the table's
model options (dropouts, widths...) and unknown ones are refused by name, so a typo never passes
silently.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from trainer.formats.catalog import TrainDefaults, unknown_model
from trainer.formats.model_schema import ArchSchema

if TYPE_CHECKING:
    from trainer.models.layers import CellClassifier

KINDS = ("scratch", "foundation")
INPUT_MODES = ("whitened", "unit")


class DuplicateModelError(ValueError):
    """Two builders registered under one name."""


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model name.

    ``defaults`` are the training defaults (for a foundation model, those of its default mode,
    linear probing; use :meth:`defaults_for` with the mode you train). ``model_kwargs`` are the
    options ``create_model`` passes to the builder (dropouts...). ``study_params_m`` is the
    parameter count the study reports at 16 classes, in millions (``None`` where it gives none).
    ``schema`` says which ``arch_kwargs`` a model file may hold and how many parameters its
    model may have (checked before a model file's model is built).
    """

    name: str
    family: str
    kind: str
    builder: Callable[..., Any]
    defaults: TrainDefaults
    input_mode: str
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    mode_defaults: Mapping[str, TrainDefaults] = field(default_factory=dict)
    study_params_m: float | None = None
    summary: str = ""
    schema: ArchSchema = field(default_factory=ArchSchema)

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(self.mode_defaults)

    def defaults_for(self, mode: str | None = None) -> TrainDefaults:
        """The training defaults for ``mode`` ("lp" / "ft_last" for foundation models; scratch
        models have no mode)."""
        if mode is None:
            return self.defaults
        if mode not in self.mode_defaults:
            known = ", ".join(self.mode_defaults) or "none (it is trained from scratch)"
            raise ValueError(f"model {self.name!r} has no mode {mode!r}; its modes: {known}")
        return self.mode_defaults[mode]


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str | Callable[..., Any] | None = None,
    *,
    family: str | None = None,
    kind: str = "scratch",
    input_mode: str | None = None,
    defaults: TrainDefaults | None = None,
    mode_defaults: Mapping[str, TrainDefaults] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    study_params_m: float | None = None,
    schema: ArchSchema | None = None,
):
    """Register a builder ``fn(num_classes, **options) -> nn.Module`` under ``name``.

    Used bare (``@register_model``) the function's name is the model's name. Defaults not
    passed here are looked up in ``defaults.STUDY_TABLE`` (the one table); a name in neither
    is refused, so every registered model has training defaults. ``schema``: the options a
    model file may give the builder, with their bounds, and the parameter cap; without one a
    model file may give none (and the cap is ``model_schema.DEFAULT_MAX_PARAMS``).
    """
    if callable(name):  # bare decorator
        return register_model()(name)

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        from trainer.models.defaults import STUDY_TABLE

        model_name = name or fn.__name__
        if model_name in _REGISTRY:
            raise DuplicateModelError(
                f"model {model_name!r} is registered twice "
                f"(first by {_REGISTRY[model_name].builder.__module__}, again by {fn.__module__})"
            )
        if kind not in KINDS:
            raise ValueError(f"model {model_name!r}: kind must be one of {KINDS}, not {kind!r}")
        row = STUDY_TABLE.get(model_name)
        d = defaults if defaults is not None else (row.defaults if row else None)
        md = mode_defaults if mode_defaults is not None else (row.mode_defaults if row else {})
        if d is None and md:
            d = next(iter(md.values()))
        if d is None:
            raise ValueError(
                f"model {model_name!r} has no training defaults: add a row to "
                "trainer/models/defaults.py (STUDY_TABLE) or pass defaults= to register_model"
            )
        kw = dict(row.model_kwargs) if row else {}
        kw.update(model_kwargs or {})
        mode = input_mode or ("whitened" if kind == "scratch" else "unit")
        if mode not in INPUT_MODES:
            raise ValueError(f"model {model_name!r}: input_mode must be one of {INPUT_MODES}")
        doc = inspect.getdoc(fn) or ""
        _REGISTRY[model_name] = ModelSpec(
            name=model_name,
            family=family or fn.__module__.rsplit(".", 1)[-1],
            kind=kind,
            builder=fn,
            defaults=d,
            input_mode=mode,
            model_kwargs=MappingProxyType(kw),
            mode_defaults=MappingProxyType(dict(md)),
            study_params_m=study_params_m if study_params_m is not None else (
                row.study_params_m if row else None),
            summary=doc.split("\n", 1)[0],
            schema=schema if schema is not None else ArchSchema(),
        )
        return fn

    return wrap


def unregister_model(name: str) -> None:
    """Remove ``name`` (for tests and plug-ins that replace a model)."""
    _REGISTRY.pop(name, None)


def list_models(kind: str | None = None) -> list[str]:
    """Registered names, optionally of one kind: the study's models in the order of its table
    (``defaults.STUDY_TABLE``), then any others in registration order."""
    from trainer.models.defaults import STUDY_TABLE

    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS} or None, not {kind!r}")
    order = {n: i for i, n in enumerate(STUDY_TABLE)}
    names = [n for n, s in _REGISTRY.items() if kind is None or s.kind == kind]
    return sorted(names, key=lambda n: order.get(n, len(order)))


def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; an unknown name raises :class:`UnknownModelError`
    listing the close matches and every known name."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_model(name, list_models()) from None


def create_model(name: str, num_classes: int, **overrides: Any) -> CellClassifier:
    """Build model ``name`` with ``num_classes`` outputs.

    ``overrides`` replace the table's model options (``dropout=0.0``...) or pass builder options
    (``mode="ft_last"``, ``weights=PATH`` for foundation models). An option the builder does not
    take raises ``TypeError`` naming the options it does take.
    """
    spec = model_spec(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, not {num_classes!r}")
    kwargs = {**spec.model_kwargs, **overrides}
    params = inspect.signature(spec.builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if not takes_any:
        bad = sorted(k for k in kwargs if k not in params)
        if bad:
            options = ", ".join(k for k in params if k != "num_classes")
            raise TypeError(
                f"model {name!r} has no option {', '.join(bad)}; its options: {options}")
    model = spec.builder(num_classes=num_classes, **kwargs)
    model.model_name = name
    return model


def count_parameters(model, trainable_only: bool = False) -> int:
    """Number of parameters (works for models built on the meta device)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def size_mb(n_params: int, bytes_per_param: int = 4) -> float:
    """Size of ``n_params`` parameters in MB (10^6 bytes), float32 by default."""
    return n_params * bytes_per_param / 1e6
