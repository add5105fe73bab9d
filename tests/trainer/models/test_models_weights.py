"""Loading foundation weights from local files: the clear errors and real round trips."""

import re

import pytest
import torch
from foundation_testdata import SMALL
from safetensors.torch import save_file

from trainer.models import InvalidWeightsError, WeightsNotFoundError, create_model
from trainer.models.weights import WEIGHTS_DIR_ENV, expected_files, find_weights

torch.set_num_threads(1)



class NotATensor:
    pass


def random_model(name, seed=0, **kw):
    torch.manual_seed(seed)
    return create_model(name, 3, pretrained=False, **SMALL[name], **kw)


def same_backbone(a, b):
    sa, sb = a.backbone.state_dict(), b.backbone.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_no_folder_set_names_the_file_and_how_to_get_it(monkeypatch):
    monkeypatch.delenv(WEIGHTS_DIR_ENV, raising=False)
    with pytest.raises(WeightsNotFoundError) as err:
        create_model("uni", 3, **SMALL["uni"])
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert "uni.safetensors" in msg and "uni.bin" in msg and WEIGHTS_DIR_ENV in msg
    assert "https://huggingface.co/MahmoodLab/UNI" in msg and "pytorch_model.bin" in msg
    assert "accept the licence" in msg


def test_folder_without_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path))
    (tmp_path / "uni.bin.partial").write_bytes(b"x")
    with pytest.raises(WeightsNotFoundError) as err:
        create_model("ctranspath", 3, **SMALL["ctranspath"])
    msg = str(err.value)
    assert str(tmp_path) in msg and "ctranspath.safetensors" in msg
    assert "1aurent/swin_tiny_patch4_window7_224.CTransPath" in msg
    assert str(tmp_path / "ctranspath.safetensors") in msg  # where to save it
    assert err.value.filename == str(tmp_path / "ctranspath.safetensors")


def test_missing_file_path_is_named(tmp_path):
    path = tmp_path / "weights" / "resnetrs50.safetensors"
    with pytest.raises(WeightsNotFoundError, match=re.escape(str(path))) as err:
        create_model("resnetrs50", 3, weights=path, **SMALL["resnetrs50"])
    assert "timm/resnetrs50.tf_in1k" in str(err.value)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_saved_state_dict_loads_back(tmp_path, name):
    source = random_model(name, seed=1)
    path = tmp_path / f"{name}.safetensors"
    save_file(source.backbone.state_dict(), str(path))
    loaded = create_model(name, 3, weights=path, **SMALL[name])
    other = random_model(name, seed=2)
    assert same_backbone(source, loaded) and not same_backbone(source, other)
    x = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        assert torch.allclose(source.eval().forward_features(x), loaded.eval().forward_features(x))


def test_weights_folder_from_the_environment_and_torch_checkpoints(tmp_path, monkeypatch):
    """A .bin checkpoint wrapped as {"model": ...} with DataParallel's "module." prefix and the
    pretraining classifier, found in the folder named by the environment variable."""
    import timm

    torch.manual_seed(3)
    pretrain = timm.create_model("resnetrs50", num_classes=10, **SMALL["resnetrs50"]["arch_kwargs"])
    sd = {f"module.{k}": v for k, v in pretrain.state_dict().items()}
    assert "module.fc.weight" in sd
    torch.save({"model": sd, "epoch": 3}, tmp_path / "resnetrs50.bin")
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path))
    assert find_weights("resnetrs50") == tmp_path / "resnetrs50.bin"
    model = create_model("resnetrs50", 3, mode="ft_last", **SMALL["resnetrs50"])
    own = model.backbone.state_dict()
    assert all(torch.equal(own[k], pretrain.state_dict()[k]) for k in own)


def test_hugging_face_folder_layout(tmp_path):
    source = random_model("uni", seed=4)
    (tmp_path / "uni").mkdir()
    torch.save(source.backbone.state_dict(), tmp_path / "uni" / "pytorch_model.bin")
    assert expected_files("uni")[-1] == "uni/pytorch_model.bin"
    assert same_backbone(source, create_model("uni", 3, weights=tmp_path, **SMALL["uni"]))


def test_original_ctranspath_checkpoint_layout(tmp_path):
    """The authors' ctranspath.pth: old Swin layout (patch merging at the end of a stage),
    buffers timm recomputes, and a classifier; timm's converter maps it."""
    source = random_model("ctranspath", seed=5)
    old = {}
    for k, v in source.backbone.state_dict().items():
        m = re.match(r"layers\.(\d+)\.downsample\.(.*)", k)
        old[f"layers.{int(m[1]) - 1}.downsample.{m[2]}" if m else k] = v
    assert "layers.0.downsample.reduction.weight" in old
    old["layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(16, 16, dtype=torch.long)
    old["head.weight"] = torch.zeros(1000, 128)
    torch.save({"model": old}, tmp_path / "ctranspath.pth")
    loaded = create_model("ctranspath", 3, weights=tmp_path, **SMALL["ctranspath"])
    assert same_backbone(source, loaded)


def test_wrong_file_is_refused_clearly(tmp_path):
    resnet = random_model("resnetrs50")
    path = tmp_path / "uni.safetensors"
    save_file(resnet.backbone.state_dict(), str(path))
    with pytest.raises(InvalidWeightsError) as err:
        create_model("uni", 3, weights=path, **SMALL["uni"])
    msg = str(err.value)
    assert str(path) in msg and "does not fit UNI" in msg
    assert "tensors missing (cls_token, pos_embed" in msg
    assert re.search(r"\d+ unexpected \([\w.]*(bn|conv)", msg)
    assert isinstance(err.value, WeightsNotFoundError)

    small_vit = random_model("uni").backbone.state_dict()  # right family, wrong size
    torch.save(small_vit, tmp_path / "uni.bin")
    with pytest.raises(InvalidWeightsError, match=r"wrong shape \(cls_token \(1, 1, 192\) vs"):
        create_model("uni", 3, weights=tmp_path / "uni.bin", **{**SMALL["uni"],
                                                                "arch": "vit_small_patch16_224"})


def test_corrupt_or_unsafe_files_are_refused(tmp_path):
    bad = tmp_path / "uni.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    expected = f"cannot read weights file {re.escape(str(bad))}:"
    with pytest.raises(InvalidWeightsError, match=expected):
        create_model("uni", 3, weights=bad, **SMALL["uni"])
    pickled = tmp_path / "uni.bin"
    torch.save({"model": NotATensor()}, pickled)  # weights_only=True refuses arbitrary objects
    with pytest.raises(InvalidWeightsError, match="cannot read weights file"):
        create_model("uni", 3, weights=pickled, **SMALL["uni"])
