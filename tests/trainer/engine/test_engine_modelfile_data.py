"""Model files record the data that trained them (``meta["data"]``), so a file shared without
its run folder still says how many cells trained it; older files without it still load."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from engine_testdata import make_patchset, tiny_config

from trainer.engine import modelfile as mfile
from trainer.engine.events import EventSink
from trainer.engine.loop import run_training
from trainer.formats.augment_plan import build_augmented_index
from trainer.formats.patchset import PatchSet, load_patchset


def _uneven_patchset(root: Path) -> Path:
    """red and green with 20 cells each and blue with 1: at FlagLimit 40 (FlagMin 2) blue is
    excluded and each kept class splits 16 train / 4 validation."""
    full = load_patchset(make_patchset(root / "full.patches", n_per_class=20), mmap=False)
    keep = np.arange(41)
    ps = PatchSet(patches=full.patches[keep], labels=full.labels[keep], classes=full.classes,
                  cell_ids=[full.cell_ids[i] for i in keep],
                  sources=[full.sources[i] for i in keep], xy=full.xy[keep],
                  padded=full.padded[keep], fov_px=full.fov_px)
    out = root / "uneven.patches"
    ps.save(out)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("modelfile_data")
    ps_path = _uneven_patchset(root)
    sink = EventSink()
    result = run_training(tiny_config(ps_path, root / "run", epochs=2, flag_limit=40,
                                      patience=0), sink=sink)
    assert result.status == "finished", result.error
    started = next(e for e in sink.history if e["event"] == "started")
    return root, ps_path, result, started


def test_best_and_last_model_files_record_the_training_data(trained):
    _, ps_path, result, started = trained
    expected_aug = len(build_augmented_index(32, 42))
    for path in (result.best_path, result.last_path):
        data = mfile.read_model_meta(path)["data"]
        assert (data["n_train"], data["n_val"]) == (32, 8)  # 2 kept classes x 16 / 4
        assert data["n_train_augmented"] == expected_aug > 32
        assert data["flag_limit"] == 40
        assert data["kept_classes"] == ["red", "green"]
        assert data["excluded_classes"] == ["blue"]
        assert data["patchset"] == str(ps_path.resolve())
        assert data["val_patchset"] is None
        # the same counts the run announced in its started event
        assert (data["n_train"], data["n_train_augmented"], data["n_val"]) == (
            started["n_train"], started["n_train_augmented"], started["n_val"])
    last = mfile.read_model_meta(result.last_path)
    best = mfile.read_model_meta(result.best_path)
    assert last["data"]["epochs_run"] == 2
    assert best["data"]["epochs_run"] == best["metrics"]["epoch"]
    assert mfile.FORMAT_VERSION == 1  # an additive field: the format version is unchanged


def test_a_model_file_alone_shows_its_training_data_in_the_panel(trained):
    from cellviewer.core.predict.model_info import describe_meta, read_model_info

    root, _, result, _ = trained
    alone = root / "shared" / "model.cvmodel"
    alone.parent.mkdir()
    shutil.copy(result.best_path, alone)  # no events.jsonl beside it
    text = describe_meta(read_model_info(alone))["Training data"]
    assert "32 train" in text and "8 validation" in text
    assert "FlagLimit 40" in text and "excluded: blue" in text


def test_an_older_file_without_data_loads_and_falls_back_to_the_run_events(trained):
    from cellviewer.core.predict.model_info import describe_meta, read_model_info

    _, _, result, _ = trained
    mf = mfile.load_model_file(result.best_path)
    old_meta = {k: v for k, v in mf.meta.items() if k != "data"}
    old = result.run_dir / "old.cvmodel"  # beside the run's events.jsonl
    mfile.save_model_file(old, state_dict=mf.state_dict, mean_image=mf.mean_image,
                          meta=old_meta)
    loaded = mfile.load_model_file(old)
    assert "data" not in loaded.meta and loaded.classes == ["red", "green"]
    mfile.build_model(loaded)  # still builds
    text = describe_meta(read_model_info(old))["Training data"]
    assert "32 train" in text and "8 validation" in text and "excluded: blue" in text

    alone = old.parent.parent / "old_alone.cvmodel"
    shutil.copy(old, alone)
    assert describe_meta(read_model_info(alone))["Training data"].startswith("FlagLimit 40")
