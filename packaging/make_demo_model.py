"""Rebuild the demo's bundled model, ``resources/demo/models/demo-cnn.cvmodel``.

The demo project comes with one trained model so that a first run can predict, preview blur and
review at once, before any training: the study's CNN trained from scratch on the demo's own
3,348 labelled blood cells (13 Chula RBC-12 classes, MIT licence like the images) with the
registry's defaults, on the CPU. The weights are stored in float16: half the size, with
probabilities within 0.004 of the float32 model's and the same predicted class for all 3,348
demo cells. The file's paths are made relative to the demo folder.

It is a demonstration, trained and validated on 40 images: not a model for diagnosis.

Run from the repository root (about 15 minutes on 2 CPU cores):

    python packaging/make_demo_model.py                   # train, then write the model
    python packaging/make_demo_model.py --from RUN/best.cvmodel    # convert a trained one
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo"
OUT = DEMO / "models" / "demo-cnn.cvmodel"
EPOCHS = 20
SEED = 7


def train(work: Path) -> Path:
    """Build the demo's patch set and train the CNN on it; returns the best model file."""
    patches = work / "demo.patches"
    subprocess.run([sys.executable, "-m", "trainer", "build-patchset", str(DEMO / "points.csv"),
                    str(DEMO), str(patches)], check=True, cwd=ROOT)
    subprocess.run([sys.executable, "-m", "trainer", "train", "--patchset", str(patches),
                    "--model", "cnn", "--epochs", str(EPOCHS), "--seed", str(SEED),
                    "--device", "cpu", "--out", str(work / "run"), "--no-json"],
                   check=True, cwd=ROOT)
    return work / "run" / "best.cvmodel"


def write_demo_model(source: Path, out: Path = OUT) -> Path:
    """``source`` with float16 weights, no optimiser state and paths that name the demo."""
    import torch

    from trainer.engine.modelfile import load_model_file, save_model_file

    mf = load_model_file(source)
    meta = dict(mf.meta)
    for key in ("train_state", "optimizer"):
        meta.pop(key, None)
    demo_data = "resources/demo/points.csv (the demo's 3,348 labelled cells)"
    meta["data"] = {**meta.get("data", {}), "patchset": demo_data, "val_patchset": None}
    config = dict(meta.get("config", {}))
    config.update(patchset=demo_data, out_dir="", val_patchset=None)
    meta["config"] = config
    meta["demo"] = ("trained on the CellViewer demo's 40 Chula RBC-12 images to show the app "
                    "at work; not a model for diagnosis")
    state = {k: v.half() if v.is_floating_point() else v for k, v in mf.state_dict.items()}
    path = save_model_file(out, state_dict=state, mean_image=mf.mean_image.to(torch.float32),
                           meta=meta)
    path.chmod(0o644)  # a resource every user of the installed package reads
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="source", type=Path, help="a trained model file to convert")
    args = p.parse_args()
    if args.source is not None:
        path = write_demo_model(args.source)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = write_demo_model(train(Path(tmp)))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
