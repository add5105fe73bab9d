"""The sweep's grid: FlagLimits that draw the same cells fold into one run, shards partition
the grid, a specification is checked before anything trains."""

import numpy as np
import pytest

from trainer.formats.config import ConfigError
from trainer.formats.sweep import SweepSpec, parse_shard, shard_runs

COUNTS = np.array([40, 30, 12])  # red, green, blue (see sweep_testdata)


def _spec(**changes) -> SweepSpec:
    data = {"patchset": "train.patches", "models": ["cnn", {"model": "mlp", "label": "mlp-s"}],
            "flag_limits": [16, 64, 256, 512, "all"], "seeds": [1, 2]}
    data.update(changes)
    return SweepSpec.from_dict(data)


def test_limits_that_draw_the_same_cells_are_one_run():
    runs = _spec().grid(COUNTS)
    cnn = [r for r in runs if r.entry.name == "cnn" and r.seed == 1]
    # 16 caps red and green; 64 keeps every cell (FlagMin 4) like "all"; 256 and 512 exclude
    # blue (FlagMin 13 and 26) and keep 40 and 30: the same cells, one run named 256
    assert [(r.limit_label, r.covers) for r in cnn] == [
        ("16", ("16",)), ("all", ("64", "all")), ("256", ("256", "512"))]
    assert len(runs) == 2 * 3 * 2
    assert [r.run_id for r in runs[:3]] == ["cnn-fl16-s1", "cnn-fl16-s2", "cnn-flall-s1"]
    assert runs[-1].run_id == "mlp-s-fl256-s2"


def test_a_limit_above_the_largest_class_without_exclusions_is_all():
    runs = _spec(flag_limits=[64, 128], seeds=[3], models=["cnn"]).grid(COUNTS)
    assert [(r.flag_limit, r.covers) for r in runs] == [(None, ("64", "128"))]


def test_shards_partition_the_grid():
    runs = _spec().grid(COUNTS)
    parts = [shard_runs(runs, (i, 3)) for i in range(3)]
    ids = sorted(r.run_id for p in parts for r in p)
    assert ids == sorted(r.run_id for r in runs)
    assert len({r.run_id for r in runs}) == len(runs)
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "a/2", "1", "0/0"):
        with pytest.raises(ConfigError, match="--shard"):
            parse_shard(bad)


@pytest.mark.parametrize("changes, message", [
    ({"models": []}, "non-empty"),
    ({"models": ["cnn", "cnn"]}, "listed twice"),
    ({"flag_limits": [0]}, "positive integer"),
    ({"flag_limits": ["lots"]}, "positive integer or 'all'"),
    ({"seeds": [-1]}, "seed"),
    ({"train": {"seed": 3}}, "may not set seed"),
    ({"train": {"epochs": 0}}, "epochs must be"),
    ({"colour": 1}, "unknown field"),
])
def test_bad_specifications_are_refused_by_name(changes, message):
    with pytest.raises(ConfigError, match=message):
        _spec(**changes)


def test_the_specification_round_trips(tmp_path):
    spec = _spec(train={"epochs": 3})
    spec.save(tmp_path / "sweep.json")
    again = SweepSpec.load(tmp_path / "sweep.json")
    assert again.to_dict() == spec.to_dict()
    assert again.run_config(again.grid(COUNTS)[0], "out").epochs == 3
