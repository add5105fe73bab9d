"""Foundation wrappers on small timm models of the same families (random weights, CPU)."""

import pytest
import torch
import torch.nn.functional as F
from foundation_testdata import SMALL

from trainer.models import count_parameters, create_model, list_models
from trainer.models.foundation import IMAGENET_MEAN, IMAGENET_STD, ConvStem

torch.set_num_threads(1)

# What FT_last must unfreeze, per backbone (parameter-name prefixes of the wrapper).
LAST = {
    "uni": ("backbone.blocks.1.", "backbone.norm."),
    "ctranspath": ("backbone.layers.3.", "backbone.norm."),
    "resnetrs50": ("backbone.layer4.",),
}


def small(name, mode, num_classes=3, **kw):
    torch.manual_seed(0)
    return create_model(name, num_classes, mode=mode, pretrained=False, **{**SMALL[name], **kw})


def test_every_foundation_model_has_a_small_stand_in():
    assert sorted(SMALL) == sorted(list_models("foundation"))


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("mode", ["lp", "ft_last"])
def test_forward_backward_from_40px_unit_input(name, mode):
    model = small(name, mode).train()
    x = torch.rand(2, 3, 40, 40)
    logits = model(x)
    assert logits.shape == (2, 3)
    F.cross_entropy(logits, torch.tensor([0, 2])).backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        else:
            assert p.grad is None, pname
    model.eval()
    with torch.no_grad():
        f = model.forward_features(x)
        assert f.shape == (2, model.num_features) and model.num_features > 0
        assert torch.allclose(model.forward_head(f), model(x))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_linear_probing_freezes_everything_but_the_head(name):
    model = small(name, "lp")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}
    assert model.trainable_modules == ["head"]
    assert count_parameters(model, trainable_only=True) == model.num_features * 3 + 3
    model.train()
    assert model.head.training
    assert not any(m.training for m in model.backbone.modules())  # BN and dropout frozen too


def test_linear_probing_keeps_batchnorm_statistics():
    model = small("resnetrs50", "lp").train()
    bn = model.backbone.layer1[0].bn1
    before = bn.running_mean.clone()
    model(torch.rand(4, 3, 40, 40))
    assert torch.equal(bn.running_mean, before)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_ft_last_unfreezes_exactly_the_last_block_or_stage(name):
    model = small(name, "ft_last")
    prefixes = LAST[name] + ("head.",)
    names = [n for n, _ in model.named_parameters()]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in names if n.startswith(prefixes)}
    assert trainable and len(trainable) < len(names)
    assert all(any(n.startswith(p) for n in trainable) for p in prefixes)  # each part trains
    assert model.trainable_modules == [p.rstrip(".") for p in prefixes]
    model.train()
    parts = [p.rstrip(".") for p in LAST[name]]
    for n, m in model.backbone.named_modules(prefix="backbone"):
        inside = any(n == p or n.startswith(p + ".") for p in parts)
        assert m.training == inside, n  # only the trained parts switch to training mode
    model.eval()
    assert not any(m.training for m in model.modules())


def test_input_is_resized_and_normalised_inside():
    model = small("uni", "lp").eval()
    x = torch.full((1, 3, 40, 40), 0.25)
    y = model.preprocess(x)
    assert y.shape == (1, 3, 32, 32)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(y, ((0.25 - mean) / std).expand_as(y), atol=1e-5)
    # bicubic overshoot is clamped to [0, 1] as an 8-bit resize would be
    edge = torch.zeros(1, 3, 40, 40)
    edge[..., 20:] = 1.0
    z = model.preprocess(edge) * std + mean
    assert z.min() >= -1e-6 and z.max() <= 1 + 1e-6
    assert model.input_size == 32 and create_model("uni", 2, pretrained=False,
                                                   arch_kwargs={"depth": 1}).input_size == 224


def test_ctranspath_uses_its_conv_stem():
    model = small("ctranspath", "lp")
    stem = model.backbone.patch_embed
    assert isinstance(stem, ConvStem)
    keys = {k for k in model.backbone.state_dict() if k.startswith("patch_embed.")}
    assert {"patch_embed.proj.0.weight", "patch_embed.proj.1.running_mean",
            "patch_embed.proj.3.weight", "patch_embed.proj.6.weight", "patch_embed.proj.6.bias",
            "patch_embed.norm.weight"} <= keys
    assert stem(torch.zeros(1, 3, 64, 64)).shape == (1, 16, 16, 16)  # NHWC, /4


def test_real_backbones_on_the_meta_device():
    """The real architectures (no weights, no memory): sizes and the FT_last split."""
    expect = {  # backbone parameters (timm, num_classes=0), embedding size
        "resnetrs50": (33_642_912, 2048),
        "ctranspath": (27_520_038, 768),
        "uni": (303_350_784, 1024),
    }
    with torch.device("meta"):
        for name, (n_backbone, dim) in expect.items():
            model = create_model(name, 16, mode="ft_last", pretrained=False)
            assert model.num_features == dim
            assert count_parameters(model) == n_backbone + dim * 16 + 16, name
            assert model.input_size == 224
        uni = create_model("uni", 16, pretrained=False)
        assert len(uni.backbone.blocks) == 24 and uni.backbone.blocks[0].ls1.gamma.shape == (1024,)
        assert uni.backbone.dynamic_img_size
