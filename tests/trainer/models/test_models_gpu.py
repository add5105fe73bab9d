"""On a CUDA device: every scratch model trains under torch.compile (one graph, no breaks) in
bf16 autocast, CustomViT also under CUDA graphs and with the flash-attention kernel. Skipped
without a GPU (CI has none)."""

import pytest
import torch
import torch.nn.functional as F

from trainer.models import create_model, list_models

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def batch(n=64, k=16):
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(n, 3, 40, 40, device="cuda", generator=g) * 0.2
    return x, torch.randint(0, k, (n,), device="cuda", generator=g)


@pytest.mark.parametrize("name", list_models("scratch"))
def test_compiled_bf16_training_step(name):
    import torch._dynamo

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = create_model(name, 16).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, y = batch()

    @torch.compile(fullgraph=True)
    def loss_fn(x, y):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return F.cross_entropy(model(x), y)

    losses = []
    for _ in range(4):
        loss = loss_fn(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]  # it learns the fixed batch

    model.eval()
    with torch.no_grad():
        eager = model(x)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            compiled = torch.compile(model, fullgraph=True)(x)
    assert torch.allclose(compiled.float(), eager, atol=0.1, rtol=0.05)


def test_custom_vit_cuda_graphs_and_flash_attention():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    model = create_model("custom_vit", 16).cuda().eval()
    x, _ = batch(512)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # raises if flash cannot take our shapes
            flash = model(x)
        graphed = torch.compile(model, mode="reduce-overhead", fullgraph=True)
        outs = [graphed(x).clone() for _ in range(3)]  # warm-up, record, replay
    for out in outs:
        assert torch.allclose(out.float(), flash.float(), atol=0.05, rtol=0.05)


@pytest.mark.parametrize("name,kw", [
    ("uni", dict(arch="vit_tiny_patch16_224", arch_kwargs={"depth": 2})),
    ("resnetrs50", dict(arch_kwargs={"layers": (1, 1, 1, 1)})),
])
def test_foundation_ft_last_bf16_on_gpu(name, kw):
    model = create_model(name, 4, mode="ft_last", pretrained=False, **kw).cuda().train()
    x = torch.rand(8, 3, 40, 40, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x), torch.zeros(8, dtype=torch.long, device="cuda"))
    loss.backward()
    assert all(p.grad is not None for p in model.trainable_parameters())
