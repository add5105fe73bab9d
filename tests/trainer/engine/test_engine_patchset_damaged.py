"""A damaged patch set is refused as ``bad-patchset`` naming the folder and the cause, never as
an ``internal`` fault of the trainer and never loaded as something else (issue 14, item 10)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from engine_testdata import make_patchset, tiny_config

from trainer.engine.events import EventSink
from trainer.engine.loop import run_training
from trainer.formats.errors import classify_exception
from trainer.formats.patchset import PatchSetError, load_patchset
from trainer.formats.protocol import ErrorKind

N = 9  # 3 classes x 3 cells


def _meta(change):
    def damage(folder: Path) -> None:
        meta = json.loads((folder / "meta.json").read_text())
        changed = change(meta)
        (folder / "meta.json").write_text(json.dumps(meta if changed is None else changed))
    return damage


def _drop_classes(meta: dict) -> None:
    del meta["classes"]


DAMAGE = {
    # the three the issue found reported as "internal"
    "meta-not-an-object": _meta(lambda m: [1, 2]),
    "version-not-a-number": _meta(lambda m: m.__setitem__("version", "one")),
    "fov-not-a-number": _meta(lambda m: m.__setitem__("fov_px", "forty")),
    # and their kin
    "no-classes": _meta(_drop_classes),
    "classes-a-string": _meta(lambda m: m.__setitem__("classes", "abc")),
    "fov-infinite": _meta(lambda m: m.__setitem__("fov_px", 1e400)),
    "meta-not-utf8": lambda d: (d / "meta.json").write_bytes(b"\xff\xfe{"),
    "meta-nested-too-deep": lambda d: (d / "meta.json").write_text("[" * 100_000 + "]" * 100_000),
    "patches-a-scalar": lambda d: np.save(d / "patches.npy", np.array(3)),
    "patches-float": lambda d: np.save(d / "patches.npy", np.zeros((N, 40, 40, 3))),
    "labels-a-scalar": lambda d: np.save(d / "labels.npy", np.array(1)),
    "labels-2d": lambda d: np.save(d / "labels.npy", np.zeros((N, 2), np.int16)),
    "labels-float": lambda d: np.save(d / "labels.npy", np.full(N, 0.5)),
    "labels-wrap-int16": lambda d: np.save(d / "labels.npy", np.full(N, 65536, np.int64)),
    "source-crops-wrong-shape": lambda d: np.save(d / "source_crops.npy",
                                                  np.zeros((N, 3), np.uint8)),
    "cells-not-utf8": lambda d: (d / "cells.csv").write_bytes(b"\xff\xfe\x00abc\n\x80\x81"),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return make_patchset(tmp_path_factory.mktemp("damaged") / "base.patches", n_per_class=3)


def _damaged(base: Path, tmp_path: Path, name: str) -> Path:
    folder = tmp_path / f"{name}.patches"
    shutil.copytree(base, folder)
    DAMAGE[name](folder)
    return folder


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_a_damaged_patch_set_is_a_bad_patchset_naming_it(base, tmp_path, name):
    folder = _damaged(base, tmp_path, name)
    with pytest.raises(PatchSetError) as info:
        load_patchset(folder)
    kind, message = classify_exception(info.value)
    assert kind is ErrorKind.BAD_PATCHSET
    assert str(folder) in message


@pytest.mark.parametrize("name", ["meta-not-an-object", "version-not-a-number",
                                  "fov-not-a-number"])
def test_training_on_a_damaged_patch_set_ends_with_a_bad_patchset_event(base, tmp_path, name):
    folder = _damaged(base, tmp_path, name)
    sink = EventSink()
    result = run_training(tiny_config(folder, tmp_path / "run"), sink=sink)
    assert result.exit_code == 1
    assert sink.history[-1]["event"] == "error"
    assert sink.history[-1]["kind"] == "bad-patchset", sink.history[-1]["message"]
