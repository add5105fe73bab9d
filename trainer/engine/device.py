"""Choosing the device and the precision a run uses."""

from __future__ import annotations

import contextlib

import torch

from trainer.formats.errors import TrainerError
from trainer.formats.protocol import ErrorKind


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def select_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, then Apple MPS, then CPU. A named device that is not there is an error
    (silently training on the CPU for hours is worse than refusing)."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise TrainerError(f"Unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps",
                           ErrorKind.DEVICE) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainerError("Device 'cuda' was asked for but PyTorch sees no CUDA GPU here "
                               "(use --device auto or cpu)", ErrorKind.DEVICE)
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise TrainerError(f"Device {name!r}: only {torch.cuda.device_count()} CUDA "
                               "device(s) here", ErrorKind.DEVICE)
        return torch.device("cuda", index)
    if dev.type == "mps" and not _mps_available():
        raise TrainerError("Device 'mps' was asked for but Apple MPS is not available here",
                           ErrorKind.DEVICE)
    if dev.type not in ("cpu", "cuda", "mps"):
        raise TrainerError(f"Unsupported device {name!r}", ErrorKind.DEVICE)
    return dev


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"


def amp_dtype(device: torch.device, amp: str = "auto") -> torch.dtype | None:
    """bf16 autocast on CUDA by default (and when asked, where the device supports it)."""
    if amp == "off":
        return None
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None, cache: bool = True):
    """An autocast context (or a no-op one). ``cache=False`` inside CUDA-graph capture: the
    weight-cast cache must not outlive the captured region."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache)


def prefers_channels_last(model: torch.nn.Module, device: torch.device) -> bool:
    """Whether to run ``model`` in channels-last layout: on the CPU for convolutional models
    (two or more Conv2d), where oneDNN's convolutions run about twice as fast that way (the
    CNN's forward+backward: 127 -> 246 samples/s at batch 256 on 2 cores). GPUs keep the
    default layout (what the CUDA-graph path was written for)."""
    if device.type != "cpu":
        return False
    return sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) >= 2


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def configure_backends(device: torch.device) -> None:
    """Let float32 matmuls use TF32 and cuDNN pick its fastest kernels (fixed input shapes)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def gpu_status() -> dict:
    """What this PyTorch can run on, and (``advice``) why no GPU is used where none is: a
    CPU-only build of PyTorch (the usual cause) or a CUDA build that finds no usable GPU (a
    missing or too old NVIDIA driver). ``advice`` (and ``short``, its gist in a few words) is
    None when a GPU is there."""
    cuda_build = torch.version.cuda
    devices = []
    if torch.cuda.is_available():
        devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    mps = _mps_available()
    advice = short = None
    if not devices and not mps:
        if cuda_build is None:
            short = "this PyTorch is built for the CPU only"
            advice = (f"This PyTorch ({torch.__version__}) is built for the CPU only. To use an "
                      "NVIDIA GPU, install a CUDA build of PyTorch into this environment (the "
                      "command for your system is on pytorch.org, 'Get started'; for example "
                      "pip install torch torchvision --index-url "
                      "https://download.pytorch.org/whl/cu126), then restart the app.")
        else:
            short = "no usable GPU (driver?)"
            advice = (f"This PyTorch ({torch.__version__}) is built for CUDA {cuda_build} but "
                      "finds no usable GPU. Check that the computer has an NVIDIA GPU and that "
                      f"its driver is installed and supports CUDA {cuda_build} (nvidia-smi "
                      "shows both); inside a container, that the GPU is passed through.")
    return {"torch": torch.__version__, "cuda_build": cuda_build, "cuda_devices": devices,
            "mps": mps, "advice": advice, "short": short}
