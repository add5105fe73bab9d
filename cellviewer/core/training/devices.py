"""The devices a run can train on, and the one owner of what "auto" means in the training
form. Which GPUs there are needs torch, which the app does not import: a separate trainer
process is asked (``python -m trainer devices --json``), once per app session."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import dataclass

from cellviewer.core.training import runs as runs_mod

AUTO = "auto"  # the trainer picks: CUDA, then Apple MPS, then CPU (trainer.engine.device)
CPU = "cpu"
MPS = "mps"
AUTO_LABEL = "auto (CUDA, then Apple MPS, then CPU)"
#: every CUDA GPU of this machine: one trainer process per GPU under torchrun (DDP)
ALL_GPUS = "all-gpus"
PROBE_TIMEOUT_S = 120.0  # importing torch takes seconds; a hung probe must not hang forever


class TrainerQueryError(RuntimeError):
    """A trainer process asked for a JSON answer gave none; the message says why."""


def ask_trainer(args: list[str], timeout: float = PROBE_TIMEOUT_S):
    """The JSON a trainer command prints (``["devices", "--json"]``), run as a separate
    process of the same trainer as the app (``-m trainer``, or the frozen app's
    ``--run-trainer``). Blocks: call it from a worker thread."""
    program, argv = runs_mod.trainer_invocation(args)
    try:
        done = subprocess.run([program, *argv], capture_output=True, text=True,
                              timeout=timeout, env=runs_mod.trainer_env(), check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise TrainerQueryError(f"could not run {program} ({exc})") from exc
    try:
        return json.loads(done.stdout)
    except ValueError:
        tail = "\n".join(done.stderr.strip().splitlines()[-4:])
        raise TrainerQueryError(
            f"the trainer exited with code {done.returncode}: {tail or 'no output'}") from None


@dataclass(frozen=True)
class DeviceStatus:
    """What the trainer's PyTorch can run on. ``short`` and ``advice`` say why no GPU is used
    where none is (None when there is one)."""

    cuda: tuple[str, ...] = ()  # GPU names; cuda:i is the i-th
    mps: bool = False
    short: str | None = None
    advice: str | None = None

    @classmethod
    def from_json(cls, data: dict) -> DeviceStatus:
        """From ``python -m trainer devices --json`` (``trainer.engine.device.gpu_status``)."""
        return cls(tuple(str(n) for n in data.get("cuda_devices") or ()), bool(data.get("mps")),
                   data.get("short"), data.get("advice"))

    def note(self) -> str:
        """The devices found, in a few words: "2 CUDA GPU(s)", "no GPU found: <why>"."""
        found = [f"{len(self.cuda)} CUDA GPU(s)"] if self.cuda else []
        found += ["Apple MPS"] if self.mps else []
        if found:
            return ", ".join(found)
        return "no GPU found" + (f": {self.short}" if self.short else "")


@dataclass(frozen=True)
class DeviceOption:
    value: str  # RunConfig.device
    label: str


_lock = threading.Lock()
_found: DeviceStatus | None = None


def probe_devices(timeout: float = PROBE_TIMEOUT_S) -> DeviceStatus:
    """The trainer's devices, asked once per app session (a failed probe is asked again next
    time). Blocks for seconds the first time: call it from a worker thread."""
    global _found
    with _lock:
        if _found is None:
            _found = DeviceStatus.from_json(ask_trainer(["devices", "--json"], timeout))
        return _found


def device_options(status: DeviceStatus | None, current: str = AUTO) -> list[DeviceOption]:
    """What the device choice offers: auto, the CPU, each GPU found, Apple MPS where there is
    one, and ``current`` when none of these is it (a device set by hand or not yet found)."""
    out = [DeviceOption(AUTO, AUTO_LABEL), DeviceOption(CPU, "CPU")]
    if status is not None:
        out += [DeviceOption(f"cuda:{i}", f"cuda:{i} · {name}")
                for i, name in enumerate(status.cuda)]
        if len(status.cuda) >= 2 and multi_gpu_supported():
            out.append(DeviceOption(ALL_GPUS, f"all {len(status.cuda)} GPUs "
                                              "(one trainer process each, torchrun)"))
        if status.mps:
            out.append(DeviceOption(MPS, "Apple MPS"))
    if current and all(o.value != current for o in out):
        out.append(DeviceOption(current, current))
    return out


def is_device(value: str) -> bool:
    """A device string the form accepts: the trainer's, or :data:`ALL_GPUS` (whether it is
    present is the trainer's to check)."""
    return value in (AUTO, CPU, "cuda", MPS, ALL_GPUS) or (value.startswith("cuda:")
                                                            and value[5:].isdigit())


def multi_gpu_supported() -> bool:
    """Whether this app can launch torchrun: a Python installation can
    (``python -m torch.distributed.run``); a frozen app has no ``-m``."""
    return not getattr(sys, "frozen", False)


def launch_plan(device: str, status: DeviceStatus | None) -> tuple[str, int]:
    """The trainer's ``--device`` and the number of processes for the form's device: one
    process on the device chosen, or :data:`ALL_GPUS`: ``cuda`` on each of the GPUs found."""
    if device != ALL_GPUS:
        return device, 1
    return "cuda", len(status.cuda) if status is not None else 0
