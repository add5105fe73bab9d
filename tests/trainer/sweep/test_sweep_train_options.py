"""A sweep passes the training options of issue 18 through to every run; bad values are
refused when the specification is read, before anything trains."""

import pytest

from trainer.formats.config import ConfigError
from trainer.formats.sweep import SweepRun, SweepSpec

OPTIONS = {"label_smoothing": 0.1, "class_balance": "inverse", "mixup": 0.2, "cutmix": 1.0,
           "color_jitter": 0.05, "schedule": "constant", "warmup_epochs": 2,
           "class_balance_beta": 0.99}


def test_every_run_trains_with_the_specs_options():
    spec = SweepSpec.from_dict({"patchset": "t.patches", "models": ["cnn", "custom_vit"],
                                "seeds": [1, 2], "train": OPTIONS})
    for entry in spec.models:
        cfg = spec.run_config(SweepRun(entry, None, 2), "out")
        assert {k: getattr(cfg, k) for k in OPTIONS} == OPTIONS
    again = SweepSpec.from_dict(spec.to_dict())  # sweep.json round trip
    assert again.train == OPTIONS


def test_a_bad_option_is_refused_when_the_spec_is_read():
    with pytest.raises(ConfigError, match="mixup must be a Beta alpha"):
        SweepSpec.from_dict({"patchset": "t.patches", "models": ["cnn"],
                             "train": {"mixup": -1}})
