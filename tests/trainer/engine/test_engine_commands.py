"""The engine's CLI commands in-process: predict (patch set and points CSV), evaluate,
robustness, benchmark, the train command's configuration merging, and the terminal bar."""

import csv
import io
import json

import numpy as np
import pytest
import torch
from engine_testdata import make_patchset, tiny_config
from PIL import Image

from trainer.cli import build_parser, main
from trainer.engine.commands import _train_config
from trainer.engine.events import EventSink
from trainer.engine.loop import run_training
from trainer.engine.progress import TerminalProgress
from trainer.formats.protocol import parse_line


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine-commands")
    ps = make_patchset(root / "train.patches")
    torch.set_num_threads(1)
    result = run_training(tiny_config(ps, root / "run", epochs=1), sink=EventSink())
    assert result.status == "finished", result.error
    return ps, result


def test_predict_a_patch_set_to_csv(run, tmp_path, capsys):
    ps, result = run
    out = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(result.best_path), "--patchset", str(ps),
                 "--out", str(out), "--device", "cpu", "--embeddings",
                 str(tmp_path / "emb.npy")]) == 0
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 60 and rows[0]["cell_id"] == "cell0" and rows[0]["label"] == "red"
    for r in rows[:5]:
        p = [float(r[f"p_{c}"]) for c in ("red", "green", "blue")]
        assert sum(p) == pytest.approx(1, abs=1e-4)
        assert float(r["confidence"]) == pytest.approx(max(p), abs=1e-6)
        assert r["predicted"] == ("red", "green", "blue")[int(np.argmax(p))]
    assert np.load(tmp_path / "emb.npy").shape[0] == 60


def test_predict_points_csv_crops_like_the_patch_set(run, tmp_path):
    ps, result = run
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "tile.png")
    (tmp_path / "points.csv").write_text("image,x,y\ntile.png,50.5,60.2\ntile.png,3,4\n")
    out = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(result.best_path), "--points",
                 str(tmp_path / "points.csv"), "--images", str(tmp_path), "--out", str(out),
                 "--device", "cpu"]) == 0
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["cell_id"] for r in rows] == ["points.csv:2", "points.csv:3"]
    from trainer.predict import Predictor

    p = Predictor.load(result.best_path, device="cpu")
    direct = p.predict(image[None, 40:80, 30:70]).probs[0]  # origin floor(50.5) - 20, 60 - 20
    assert float(rows[0]["p_red"]) == pytest.approx(direct[0], abs=1e-5)


def test_predict_refuses_a_points_csv_without_coordinates(run, tmp_path, capsys):
    _, result = run
    (tmp_path / "points.csv").write_text("image,x\ntile.png,1\n")
    assert main(["predict", "--model", str(result.best_path), "--points",
                 str(tmp_path / "points.csv"), "--images", str(tmp_path), "--out",
                 str(tmp_path / "o.csv")]) == 1
    err = capsys.readouterr().err
    assert "points.csv, line 1: missing column(s) y" in err
    assert not (tmp_path / "o.csv").exists()


def test_evaluate_and_robustness_commands(run, tmp_path, capsys):
    _, result = run
    assert main(["evaluate", "--model", str(result.best_path), "--out", str(tmp_path),
                 "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "macro-F1" in text and "confusion" in text
    assert json.loads((tmp_path / "evaluation.json").read_text())["n"] == 12
    assert main(["robustness", "--model", str(result.best_path), "--out", str(tmp_path),
                 "--sigmas", "0.2,1.6", "--device", "cpu"]) == 0
    assert "| post | 1.6 |" in capsys.readouterr().out
    report = json.loads((tmp_path / "robustness.json").read_text())
    # a 40 px field of view: the patches are the source crops, so pre-resize = post-resize
    rows = {(r["mode"], r["sigma"]): r["macro_f1"] for r in report["rows"]}
    assert sorted(rows) == [("post", 0.2), ("post", 1.6), ("pre", 0.2), ("pre", 1.6)]
    assert rows[("pre", 1.6)] == rows[("post", 1.6)]
    assert any("pre-resize blur equals post-resize" in n for n in report["notes"])


def test_evaluate_a_corrupt_model_file_fails_clearly(tmp_path, capsys):
    bad = tmp_path / "x.cvmodel"
    bad.write_bytes(b"\x00" * 100)
    assert main(["evaluate", "--model", str(bad)]) == 1
    assert "x.cvmodel" in capsys.readouterr().err


def test_benchmark_reports_latency_size_and_throughput(capsys):
    assert main(["benchmark", "cnn", "--num-classes", "4", "--device", "cpu", "--runs", "5",
                 "--large-batch", "8", "--json"]) == 0
    inf = json.loads(capsys.readouterr().out)["inference"]
    assert inf["params"] == 2021764  # the study's CNN at 4 classes
    assert inf["b1_eager_ms"] > 0 and inf["large_batch_samples_per_s"] > 0


def test_train_flags_override_the_config_file(tmp_path):
    cfg_path = tmp_path / "run.json"
    tiny_config(tmp_path / "a.patches", tmp_path / "run", epochs=5).save(cfg_path)
    args = build_parser().parse_args(["train", "--config", str(cfg_path), "--epochs", "9",
                                      "--model-arg", "hidden_dropout=0.25", "--no-augment"])
    cfg, resume = _train_config(args)
    assert (cfg.epochs, cfg.augment, cfg.batch_size) == (9, False, 32)
    assert cfg.model_args == {"channels": [8, 8, 16, 16], "hidden_dropout": 0.25}
    assert resume is None
    args = build_parser().parse_args(["train", "--config", str(cfg_path), "--resume"])
    assert _train_config(args)[1] == tmp_path / "run" / "last.cvmodel"


def test_train_without_config_or_patch_set_is_an_error_event(capsys):
    assert main(["train", "--json", "--model", "cnn"]) == 2
    event = parse_line(capsys.readouterr().out.strip())
    assert event["kind"] == "bad-config" and "--patchset" in event["message"]


def test_terminal_progress_draws_a_bar_and_epoch_lines():
    stream = io.StringIO()
    bar = TerminalProgress(stream, width=10)
    bar({"event": "batch", "epoch": 1, "epochs": 4, "step": 5, "steps": 10,
         "train_loss": 0.5, "train_acc": 0.8, "samples_per_s": 1234.0, "eta_s": 75})
    bar({"event": "epoch", "epoch": 1, "epochs": 4, "train_loss": 0.5, "train_acc": 0.8,
         "val_loss": 0.4, "val_acc": 0.85, "macro_f1": 0.8, "samples_per_s": 1234.0,
         "epoch_s": 3.2, "eta_s": 10, "improved": True})
    text = stream.getvalue()
    assert "epoch 1/4 [#####.....]  50%" in text and "1,234/s ETA 1:15" in text
    assert "val loss 0.4000 acc 0.8500 macro-F1 0.8000" in text and text.endswith("*\n")


def test_events_keep_going_to_the_run_folder_when_stdout_breaks(tmp_path):
    class ClosedPipe(io.StringIO):
        def write(self, s):
            raise BrokenPipeError("the app went away")

    sink = EventSink(stdout=ClosedPipe())
    sink.open_run_dir(tmp_path)
    sink.emit("epoch", epoch=1)
    sink.emit("epoch", epoch=2)
    sink.close()
    from trainer.formats.protocol import read_events

    assert [e["epoch"] for e in read_events(tmp_path / "events.jsonl")] == [1, 2]


def test_devices_says_why_no_gpu_is_used(capsys):
    from trainer.engine.device import gpu_status

    status = gpu_status()
    if torch.cuda.is_available():
        assert status["cuda_devices"] and status["advice"] is None
    elif torch.version.cuda is None:  # a CPU-only build: install a CUDA one
        assert "CPU only" in status["advice"] and "download.pytorch.org" in status["advice"]
    else:  # a CUDA build without a usable GPU: the driver
        assert f"CUDA {torch.version.cuda}" in status["advice"] and "driver" in status["advice"]
    assert main(["devices", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == status
