"""A model's cost, as the study's Table 4 gives it: parameters, size in MB, batch-1 latency
(the trainer's own benchmark, :func:`trainer.engine.bench.inference_cost`, on the device the
model sits on) and GFLOPs per 40x40 patch.

FLOPs are counted by PyTorch's own ``torch.utils.flop_counter.FlopCounterMode`` (fvcore and
thop are not dependencies): it counts the matrix products and convolutions of one forward
pass, a multiply-add as 2 FLOPs; element-wise operations (activations, normalisation) are not
counted, as fvcore does not count them either.
"""

from __future__ import annotations

import torch


def count_gflops(model: torch.nn.Module, device: torch.device) -> float:
    """GFLOPs of one forward pass of one (3, 40, 40) patch."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, 40, 40, device=device)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x)
    return counter.get_total_flops() / 1e9


def model_cost(model: torch.nn.Module, device: torch.device, runs: int = 400) -> dict:
    """Parameters, MB, batch-1 latency (mean of ``runs`` after warm-up) and GFLOPs."""
    from trainer.engine.bench import inference_cost
    from trainer.engine.device import device_name

    model = model.eval()
    cost = inference_cost(model, device, runs=max(1, runs), warmup=min(50, max(1, runs // 4)),
                          large_batch=None, min_seconds=0.0)
    cost["gflops"] = count_gflops(model, device)
    cost["device_name"] = device_name(device)
    cost["latency_runs"] = runs
    return cost
