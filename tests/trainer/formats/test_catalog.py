"""The catalog's plain data against the real registry: a changed architecture, default or
weights name in ``trainer.models`` fails here until ``trainer/formats/catalog.py`` follows."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trainer.formats import catalog
from trainer.formats.catalog import CATALOG_NUM_CLASSES, MODELS, model_info, model_names
from trainer.models import list_models, model_spec
from trainer.models.summary import model_rows
from trainer.models.weights import WEIGHTS_SOURCES


@pytest.fixture(scope="module")
def registry_rows() -> dict[str, dict]:
    """What ``python -m trainer models --json`` prints, measured on the meta device."""
    return {r["name"]: r for r in model_rows(CATALOG_NUM_CLASSES)}


def test_lists_exactly_the_registered_models_in_registry_order():
    assert model_names() == list_models()
    assert model_names("scratch") == list_models("scratch")
    assert model_names("foundation") == list_models("foundation")
    assert len({m.name for m in MODELS}) == len(MODELS)


def test_rows_equal_the_models_command(registry_rows):
    """Every field of every row, parameters, size and defaults included."""
    assert catalog.model_rows() == list(registry_rows.values())
    assert catalog.model_rows("foundation") == [
        r for r in registry_rows.values() if r["kind"] == "foundation"]


@pytest.mark.parametrize("name", model_names())
def test_each_model_matches_its_spec(name, registry_rows):
    info, spec, row = model_info(name), model_spec(name), registry_rows[name]
    assert (info.kind, info.family, info.input_mode) == (spec.kind, spec.family, spec.input_mode)
    assert info.summary == spec.summary
    assert info.study_params_m == spec.study_params_m
    assert info.defaults == spec.defaults
    assert dict(info.mode_defaults) == dict(spec.mode_defaults)
    assert info.modes == spec.modes
    for mode in info.modes:
        assert info.defaults_for(mode) == spec.defaults_for(mode)
    assert info.params == row["params"]
    assert info.size_mb == pytest.approx(row["size_mb"], rel=0, abs=0)
    assert info.num_features == row["num_features"]
    assert dict(info.trainable) == row.get("trainable", {})


@pytest.mark.parametrize("name", model_names())
def test_weights_stem_is_the_loaders(name):
    if model_info(name).kind == "foundation":
        assert model_info(name).weights_stem == WEIGHTS_SOURCES[name].stem
    else:
        assert model_info(name).weights_stem is None
        assert name not in WEIGHTS_SOURCES


def test_some_numbers_by_hand():
    vit = model_info("custom_vit")
    assert vit.params == 1_893_776
    assert vit.size_mb == pytest.approx(7.575104)
    assert (vit.defaults.epochs, vit.defaults.lr, vit.defaults.batch_size) == (80, 1e-4, 512)
    assert vit.defaults.warmup_epochs == 5
    uni = model_info("uni")
    assert uni.modes == ("lp", "ft_last")
    assert uni.defaults_for("ft_last").weight_decay == 0.01
    assert uni.defaults_for("lp").batch_size == 256


def test_unknown_name_and_mode_are_refused_with_hints():
    with pytest.raises(catalog.UnknownModelError, match="Did you mean 'custom_vit'"):
        model_info("custom_vitt")
    with pytest.raises(ValueError, match="its modes: none"):
        model_info("cnn").defaults_for("lp")


def test_registry_raises_the_catalogs_error_class():
    from trainer.models import UnknownModelError

    assert UnknownModelError is catalog.UnknownModelError


def test_importing_the_catalog_imports_no_torch():
    probe = ("import sys, trainer.formats.catalog\n"
             "print(','.join(m for m in ('torch', 'timm', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
