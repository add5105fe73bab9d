"""The registry: names, errors, the one defaults table, options passed to builders."""

import pytest
import torch

from trainer.models import (
    DuplicateModelError,
    TrainDefaults,
    UnknownModelError,
    create_model,
    list_models,
    model_spec,
    register_model,
)
from trainer.models._registry import unregister_model
from trainer.models.defaults import STUDY_TABLE

torch.set_num_threads(1)

SCRATCH = ["mlp", "cnn", "resnet_d4", "nin", "se_resnet_d4", "efficientnet_b0", "convnext_tiny",
           "custom_vit"]
FOUNDATION = ["resnetrs50", "ctranspath", "uni"]


def test_names_and_kinds_in_study_order():
    assert list_models("scratch") == SCRATCH
    assert list_models("foundation") == FOUNDATION
    assert list_models() == SCRATCH + FOUNDATION
    for name in SCRATCH:
        assert model_spec(name).input_mode == "whitened"
    for name in FOUNDATION:
        spec = model_spec(name)
        assert spec.input_mode == "unit" and spec.modes == ("lp", "ft_last")
    with pytest.raises(ValueError, match="kind must be"):
        list_models("pretrained")


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownModelError, match="'custom_vit'") as err:
        create_model("customvit", num_classes=3)
    assert "Known models: mlp, cnn" in str(err.value)
    with pytest.raises(UnknownModelError, match="unknown model 'zzz'"):
        model_spec("zzz")


def test_duplicate_registration_is_refused():
    with pytest.raises(DuplicateModelError, match="'cnn' is registered twice"):
        register_model("cnn")(lambda num_classes: None)


def test_registration_needs_defaults_and_works_with_them():
    with pytest.raises(ValueError, match="no training defaults"):
        @register_model
        def nodefaults_model(num_classes):  # pragma: no cover - never built
            return None

    d = TrainDefaults(epochs=3, lr=0.1, weight_decay=0.0, batch_size=8)

    @register_model(family="test", defaults=d, model_kwargs={"width": 5})
    def tiny_linear_model(num_classes, width=1):
        """A test model."""
        return torch.nn.Linear(width, num_classes)

    try:
        spec = model_spec("tiny_linear_model")
        assert spec.defaults == d and spec.summary == "A test model." and spec.kind == "scratch"
        assert create_model("tiny_linear_model", 2).in_features == 5  # the table's option
        assert create_model("tiny_linear_model", 2, width=7).in_features == 7  # the override
        assert "tiny_linear_model" in list_models("scratch")
    finally:
        unregister_model("tiny_linear_model")
    assert "tiny_linear_model" not in list_models()


def test_unknown_option_and_bad_class_count_are_refused():
    with pytest.raises(TypeError, match="no option dropuot; its options: .*dropout"):
        create_model("custom_vit", 4, dropuot=0.1)
    with pytest.raises(ValueError, match="num_classes"):
        create_model("cnn", 0)


def test_table_options_reach_the_model_and_overrides_win():
    assert create_model("cnn", 4).head.drop.p == 0.5
    assert create_model("cnn", 4, hidden_dropout=0.25).head.drop.p == 0.25
    vit = create_model("custom_vit", 4)
    assert vit.blocks[0].mlp.drop.p == 0.2 and vit.pos_drop.p == 0.2
    assert create_model("se_resnet_d4", 4).trunk.last[1].drop.p == 0.1
    assert max(b.drop_path.p for b in create_model("convnext_tiny", 4).stages[-1][2:]) == 0.2


def test_study_defaults_in_the_one_table():
    vit = model_spec("custom_vit").defaults
    assert (vit.epochs, vit.lr, vit.weight_decay, vit.batch_size) == (80, 1e-4, 0.01, 512)
    cnx = model_spec("convnext_tiny").defaults
    assert (cnx.epochs, cnx.lr, cnx.weight_decay) == (60, 1e-4, 0.2)
    assert model_spec("efficientnet_b0").defaults.lr == 1e-4
    assert [model_spec(n).defaults.epochs for n in SCRATCH] == [30, 100, 50, 50, 50, 50, 60, 80]
    assert all(model_spec(n).defaults.batch_size == 512 for n in SCRATCH)
    uni = model_spec("uni")
    lp, ft = uni.defaults_for("lp"), uni.defaults_for("ft_last")
    assert (lp.epochs, lp.lr, lp.batch_size) == (50, 5e-4, 256)
    assert (ft.epochs, ft.lr, ft.weight_decay, ft.batch_size) == (50, 1e-4, 0.01, 256)
    assert uni.defaults == lp
    with pytest.raises(ValueError, match="no mode 'full'"):
        uni.defaults_for("full")
    with pytest.raises(ValueError, match="from scratch"):
        model_spec("mlp").defaults_for("lp")
    # Every registered model has its row, and the table names no unregistered model.
    assert set(STUDY_TABLE) == set(list_models())
