"""Test-time augmentation and ensembles equal the averages computed by hand, on both CPU
paths (torch and ONNX Runtime); the ensemble's model file is read by the app's model-metadata
reader and predicts like any other; members that disagree are refused by name."""

from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.engine.ensemble import make_ensemble
from trainer.engine.modelfile import save_model_file
from trainer.formats.errors import BadModelError
from trainer.models import create_model
from trainer.predict import Predictor

CLASSES = ["red", "green", "blue"]
CNN = {"channels": [4, 4, 8, 8]}
MLP = {"hidden": [16]}


def _member(path: Path, arch: str, args: dict, seed: int, classes=CLASSES,
            fov: float = 40.0) -> Path:
    torch.manual_seed(seed)
    model = create_model(arch, len(classes), **args).eval()
    with torch.no_grad():  # larger weights than the initialisation: confident, distinct outputs
        for p in model.parameters():
            p.mul_(3.0)
    mean = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(seed)) * 0.5
    save_model_file(path, state_dict=model.state_dict(), mean_image=mean,
                    meta={"arch": arch, "arch_kwargs": args, "classes": list(classes),
                          "input_mode": "whitened", "fov_px": fov})
    return path


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    d = tmp_path_factory.mktemp("ens")
    return [_member(d / "a.cvmodel", "cnn", CNN, 1), _member(d / "b.cvmodel", "cnn", CNN, 2),
            _member(d / "c.cvmodel", "mlp", MLP, 3)]


@pytest.fixture(scope="module")
def patches():
    return np.random.default_rng(0).integers(0, 256, size=(12, 40, 40, 3), dtype=np.uint8)


def _orientations(x: np.ndarray) -> list[np.ndarray]:
    """The 8 orientations written out one by one."""
    m = x[:, :, ::-1]
    return [x, np.rot90(x, 1, (1, 2)), np.rot90(x, 2, (1, 2)), np.rot90(x, 3, (1, 2)),
            m, np.rot90(m, 1, (1, 2)), np.rot90(m, 2, (1, 2)), np.rot90(m, 3, (1, 2))]


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_tta_is_the_mean_over_the_eight_orientations(members, patches, backend):
    p = Predictor.load(members[0], device="cpu", backend=backend)
    assert p.backend == backend
    views = [p.predict(np.ascontiguousarray(v)).probs for v in _orientations(patches)]
    # the orientations really change the predictions (else the test could not fail)
    assert np.abs(views[1] - views[0]).max() > 1e-3
    tta = p.predict(patches, tta=True).probs
    np.testing.assert_allclose(tta, np.mean(views, axis=0), atol=1e-6)
    # a rotated or mirrored patch has the same 8 orientations: the same TTA prediction
    turned = np.ascontiguousarray(np.rot90(patches[:, :, ::-1], 1, (1, 2)))
    np.testing.assert_allclose(p.predict(turned, tta=True).probs, tta, atol=1e-5)
    assert p.predict(patches[0], tta=True).probs.shape == (1, 3)


def test_tta_averages_embeddings_too(members, patches):
    p = Predictor.load(members[0], device="cpu", backend="torch")
    views = [p.predict(np.ascontiguousarray(v), return_embeddings=True).embeddings
             for v in _orientations(patches)]
    got = p.predict(patches, tta=True, return_embeddings=True).embeddings
    np.testing.assert_allclose(got, np.mean(views, axis=0), atol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_the_ensemble_averages_its_members_probabilities(members, patches, tmp_path, backend):
    out = make_ensemble([str(m) for m in members], tmp_path / "ens.cvmodel")
    loaded = [Predictor.load(m, device="cpu", backend="torch") for m in members]
    each = [p.predict(patches).probs for p in loaded]
    assert np.abs(each[0] - each[1]).max() > 1e-2  # the members disagree
    ens = Predictor.load(out, device="cpu", backend=backend)
    assert ens.backend == backend and ens.classes == CLASSES
    got = ens.predict(patches).probs
    np.testing.assert_allclose(got, np.mean(each, axis=0), atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    # TTA of the ensemble: the mean over orientations of the members' mean
    views = [np.mean([p.predict(np.ascontiguousarray(v)).probs for p in loaded], axis=0)
             for v in _orientations(patches)]
    np.testing.assert_allclose(ens.predict(patches, tta=True).probs, np.mean(views, axis=0),
                               atol=1e-5)


def test_the_app_reads_the_ensemble_file_and_predicts(members, patches, tmp_path):
    from cellviewer.core.predict.model_info import describe_meta, read_model_info

    out = make_ensemble([str(m) for m in members[:2]], tmp_path / "seeds.cvmodel")
    meta = read_model_info(out)
    assert meta["arch"] == "ensemble" and meta["classes"] == CLASSES
    assert [m["path"] for m in meta["members"]] == [str(m) for m in members[:2]]
    assert describe_meta(meta)["Architecture"].startswith("ensemble")
    # what the app's prediction worker does: Predictor.load with the device rule, then predict
    p = Predictor.load(out)
    probs = p.predict(patches, batch_size=5).probs
    assert probs.shape == (12, 3) and np.isfinite(probs).all()
    emb = p.predict(patches, return_embeddings=True).embeddings
    assert emb is not None and emb.shape == (12, 2 * p.model.members[0].num_features)


def test_members_that_disagree_are_refused_by_name(members, tmp_path):
    other = _member(tmp_path / "other.cvmodel", "cnn", CNN, 4, classes=["red", "blue", "green"])
    with pytest.raises(BadModelError, match=r"other\.cvmodel: its classes .* differ"):
        make_ensemble([members[0], other], tmp_path / "x.cvmodel")
    wide = _member(tmp_path / "wide.cvmodel", "cnn", CNN, 5, fov=64.0)
    with pytest.raises(BadModelError, match=r"wide\.cvmodel: its field of view is 64 px"):
        make_ensemble([members[0], wide], tmp_path / "x.cvmodel")
    ens = make_ensemble([members[0], members[1]], tmp_path / "e.cvmodel")
    with pytest.raises(BadModelError, match="is an ensemble already"):
        make_ensemble([ens, members[2]], tmp_path / "x.cvmodel")
    with pytest.raises(ValueError, match="2 to 16 members"):
        make_ensemble([members[0]], tmp_path / "x.cvmodel")
    assert not (tmp_path / "x.cvmodel").exists()


def test_a_tampered_ensemble_file_is_refused(members, tmp_path):
    """The loader checks an ensemble's members against their architectures' schemas."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from trainer.engine.modelfile import load_model_file

    out = make_ensemble([members[0], members[1]], tmp_path / "e.cvmodel")
    with safe_open(str(out), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        header = dict(fh.metadata())
    meta = json.loads(header["meta"])
    meta["arch_kwargs"]["members"][0]["arch_kwargs"] = {"channels": [4096, 4096, 4096, 4096]}
    header["meta"] = json.dumps(meta)
    save_file(tensors, str(tmp_path / "bad.cvmodel"), metadata=header)
    with pytest.raises(BadModelError, match="bad.cvmodel"):
        load_model_file(tmp_path / "bad.cvmodel")
