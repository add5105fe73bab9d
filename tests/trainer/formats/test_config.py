"""The run configuration: JSON round trip and refusal of bad values, naming the field."""

import json

import pytest

from trainer.formats.config import ConfigError, RunConfig


def test_round_trip_through_json(tmp_path):
    cfg = RunConfig(patchset="/data/a.patches", out_dir="/runs/a", model="cnn", flag_limit=1024,
                    epochs=7, lr=3e-4, model_args={"channels": [8, 8, 16, 16]}, compile=False)
    path = cfg.save(tmp_path / "run.json")
    assert RunConfig.load(path) == cfg
    assert json.loads(path.read_text())["config_version"] == 1


def test_defaults_are_the_agreed_ones():
    cfg = RunConfig(patchset="p", out_dir="o")
    assert (cfg.batch_size, cfg.device, cfg.seed, cfg.patience, cfg.augment) == (
        512, "auto", 42, 10, True)
    assert cfg.epochs is None and cfg.lr is None  # the model's defaults


def test_unknown_and_missing_fields_are_named():
    with pytest.raises(ConfigError, match="unknown field.*batchsize"):
        RunConfig.from_dict({"patchset": "p", "out_dir": "o", "batchsize": 3})
    with pytest.raises(ConfigError, match="missing field.*out_dir"):
        RunConfig.from_dict({"patchset": "p"})


@pytest.mark.parametrize("field,value", [
    ("batch_size", 0), ("batch_size", 2.5), ("epochs", -1), ("lr", 0), ("device", "gpu"),
    ("amp", "fp16"), ("mode", "full"), ("val_fraction", 1.0), ("augment", "yes"),
    ("flag_limit", True),
])
def test_bad_values_are_refused_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        RunConfig.from_dict({"patchset": "p", "out_dir": "o", field: value})


def test_bad_json_names_the_file_and_line(tmp_path):
    path = tmp_path / "run.json"
    path.write_text('{\n  "patchset": "p",\n  "out_dir": \n}')
    with pytest.raises(ConfigError, match=r"run\.json.*line 4"):
        RunConfig.load(path)
