"""The training step: gather + augment + whiten a batch, forward, loss, backward, optimiser.

Everything one step reads lives on the training device: the sampled uint8 patches, the
augmented index (sample, colour op, orientation), this epoch's permutation of that index, a
position counter, and the loss/accuracy accumulators. A step picks its batch with
``perm[pos + arange(B)]`` and advances ``pos`` on the device, so it needs nothing from the
host: no copy, no ``.item()``, no sync. That makes the whole step capturable as **one CUDA
graph**; with the step's forward compiled by ``torch.compile`` (gather, augmentation,
whitening, model and loss fused by Inductor) and a capturable fused AdamW whose learning rate
is a device tensor computed in the graph from a device step counter, one ``replay()`` per
batch is all the host does.

The variants, fastest first (:func:`build_stepper` tries them in order and falls back, with
the reason, when one fails):

- ``compile+cuda-graph``: the step's loss function compiled, the whole step captured;
- ``compile(model)+cuda-graph``: only the model compiled, the whole step captured;
- ``cuda-graph``: eager kernels, the whole step captured;
- ``compile``: compiled loss function, no graph (any device, when asked);
- ``eager``: plain PyTorch (the CPU path, and the last resort everywhere).

Capture needs warm-up iterations (they compile, pick cuDNN algorithms and create the
optimiser state); their updates are undone afterwards (weights, buffers and optimiser state
copied back in place), so a captured run trains exactly the steps it reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from trainer.data.augment import tables
from trainer.data.loader import gather_batch
from trainer.data.mixing import mix_batch
from trainer.data.stain_jitter import stain_jitter, stain_matrices
from trainer.engine.device import autocast
from trainer.engine.loss import training_loss

if TYPE_CHECKING:
    from trainer.models.layers import CellClassifier


# ---- learning-rate schedule ---------------------------------------------------------------
@dataclass
class LrSchedule:
    """Per-step learning rate: linear warm-up over ``warmup_steps``, then constant
    (``kind="constant"``) or a cosine decay to 0 at ``total_steps`` (``kind="cosine"``)."""

    base_lr: float
    kind: str = "constant"
    warmup_steps: int = 0
    total_steps: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "cosine"):
            raise ValueError(f"unknown learning-rate schedule {self.kind!r} (constant, cosine)")

    def at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return self.base_lr
        span = max(self.total_steps - self.warmup_steps, 1)
        p = min(max((step - self.warmup_steps) / span, 0.0), 1.0)
        return self.base_lr * 0.5 * (1.0 + math.cos(math.pi * p))

    def tensor_at(self, step: torch.Tensor) -> torch.Tensor:
        """:meth:`at` as device ops on a 0-d step tensor (for use inside a CUDA graph)."""
        s = step.to(torch.float32)
        one = torch.ones((), dtype=torch.float32, device=step.device)
        if self.kind == "constant":
            after = one * self.base_lr
        else:
            span = float(max(self.total_steps - self.warmup_steps, 1))
            p = torch.clamp((s - self.warmup_steps) / span, 0.0, 1.0)
            after = self.base_lr * 0.5 * (1.0 + torch.cos(math.pi * p))
        if self.warmup_steps <= 0:
            return after
        warm = self.base_lr * (s + 1.0) / float(self.warmup_steps)
        return torch.where(s < self.warmup_steps, warm, after)


# ---- what a step reads --------------------------------------------------------------------
@dataclass
class StepData:
    """Device tensors of the training set.

    Patches mode: ``inputs`` (n, S, S, 3) uint8, ``labels`` (n,), ``plan`` (M, 3) rows of
    (sample, colour op, orientation). Features mode (linear probing on cached backbone
    features): ``inputs`` (M, D) float, ``labels`` (M,), ``plan`` None.
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    plan: torch.Tensor | None = None
    mean: torch.Tensor | None = None  # (3, S, S): subtract (whitened models); None: [0, 1]
    augment: bool = True
    # the loss (trainer.engine.loss): per-class weights (K,) on the device, label smoothing
    class_weight: torch.Tensor | None = None
    label_smoothing: float = 0.0
    color_jitter: bool = False  # stain jitter from the epoch's table (patches mode only)

    def __post_init__(self) -> None:
        self.jitter: torch.Tensor | None = None
        if self.plan is not None:
            self.orient_table, self.colour_table = tables(self.inputs.device,
                                                          self.inputs.shape[1])
        if self.color_jitter:
            if self.plan is None:
                raise ValueError("colour jitter needs patches (not cached features)")
            self.stain = stain_matrices(self.inputs.device)
            self.jitter = torch.zeros((self.n_entries, 6), dtype=torch.float32,
                                      device=self.inputs.device)
            self.jitter[:, :3] = 1.0  # identity rows until the first epoch's table comes

    @property
    def n_entries(self) -> int:
        return int(self.plan.shape[0] if self.plan is not None else self.inputs.shape[0])

    def batch(self, sel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of plan rows ``sel``, stain-jittered by the epoch's rows of those plan
        entries when colour jitter is on (by entry, not by place in the batch: every rank
        split of an epoch jitters each sample alike)."""
        if self.plan is None:
            return self.inputs[sel], self.labels[sel]
        if self.jitter is None:
            return gather_batch(self.inputs, self.labels, self.plan, sel, self.orient_table,
                                self.colour_table, self.mean, self.augment)
        x, y = gather_batch(self.inputs, self.labels, self.plan, sel, self.orient_table,
                            self.colour_table, None, self.augment)
        x = stain_jitter(x, self.jitter[sel], self.stain)
        if self.mean is not None:
            x = x - self.mean
        return x, y


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the training entries in ``epoch``: depends only on (seed, epoch), so a
    resumed run sees the same batches as an uninterrupted one."""
    return np.random.default_rng([seed, 7919, epoch]).permutation(n).astype(np.int64)


# ---- the stepper --------------------------------------------------------------------------
class TrainStepper:
    """Runs training steps of batch size ``batch_size`` over a per-epoch permutation.

    ``forward``: ``"model"`` (the input is an image batch) or ``"head"`` (cached features:
    ``model.forward_head``). ``compile_scope``: None, ``"step"`` (compile the loss function:
    batch + model + loss) or ``"model"``. ``cuda_graph``: capture the whole step.
    """

    def __init__(
        self,
        model: CellClassifier,
        optimizer: torch.optim.Optimizer,
        data: StepData,
        batch_size: int,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        schedule: LrSchedule,
        *,
        forward: str = "model",
        compile_scope: str | None = None,
        cuda_graph: bool = False,
        name: str = "eager",
        channels_last: bool = False,
        forward_module: torch.nn.Module | None = None,
        mixing: bool = False,
    ) -> None:
        if cuda_graph and device.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA device")
        self.model, self.optimizer, self.data = model, optimizer, data
        self.batch_size, self.device, self.amp_dtype = batch_size, device, amp_dtype
        self.schedule, self.forward, self.cuda_graph, self.name = (
            schedule, forward, cuda_graph, name)
        self.compile_scope = compile_scope
        self.channels_last = channels_last and forward == "model"
        m = data.n_entries
        if m < batch_size:
            raise ValueError(f"batch size {batch_size} is larger than the {m} training entries")
        self.steps_per_epoch = m // batch_size  # the incomplete last batch is dropped
        self.n_entries = m
        self.ar = torch.arange(batch_size, device=device)
        self.perm = torch.arange(m, device=device)
        self.pos = torch.zeros((), dtype=torch.int64, device=device)
        self.loss_acc = torch.zeros((), dtype=torch.float32, device=device)
        self.correct_acc = torch.zeros((), dtype=torch.int64, device=device)
        self.gstep = torch.zeros((), dtype=torch.int64, device=device)
        self.global_step = 0
        # the epoch's mixing rows (trainer.data.mixing), one per step; None: no mixing
        self.mix: torch.Tensor | None = None
        if mixing:
            if forward != "model":
                raise ValueError("mixup/CutMix need image batches (not cached features)")
            self.mix = torch.zeros((self.steps_per_epoch, 5), dtype=torch.float32,
                                   device=device)
            self.mix[:, 0] = 1.0  # identity rows until the first epoch's table comes
        # forward_module: the model as the step calls it (wrapped in DistributedDataParallel
        # when training on several processes); ``model`` stays the plain module
        target: Callable[[torch.Tensor], torch.Tensor] = (
            forward_module if forward_module is not None
            else model.forward_head if forward == "head" else model)
        if compile_scope == "model":
            target = torch.compile(target, dynamic=False)
        self._fwd = target
        self._loss_fn = (torch.compile(self._loss, dynamic=False) if compile_scope == "step"
                         else self._loss)
        self._graph: torch.cuda.CUDAGraph | None = None

    # the differentiable part --------------------------------------------------------------
    def _loss(self, sel: torch.Tensor, step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.data.batch(sel)
        y2 = w = None
        if self.mix is not None:  # mixup / CutMix with the batch rolled by one
            x, y2, w = mix_batch(x, y, self.mix[step])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.amp_dtype, cache=not self.cuda_graph):
            logits = self._fwd(x)
        logits = logits.float()
        loss = training_loss(logits, y, self.data.class_weight, self.data.label_smoothing,
                             y2, w)
        correct = (logits.argmax(dim=1) == y).sum()
        return loss, correct

    def _body(self) -> None:
        # modulo: warm-up and capture checks may run past the end of a small epoch, and an
        # out-of-range index on CUDA is a device-side assert that kills the context
        sel = self.perm[(self.pos + self.ar) % self.n_entries]
        step = torch.div(self.pos, self.batch_size, rounding_mode="floor") % self.steps_per_epoch
        self.pos += self.batch_size
        if self.cuda_graph:  # the learning rate is a device tensor, updated inside the graph
            lr = self.schedule.tensor_at(self.gstep)
            for group in self.optimizer.param_groups:
                group["lr"].copy_(lr)
            self.gstep += 1
        loss, correct = self._loss_fn(sel, step)
        loss.backward()
        self.optimizer.step()
        self.loss_acc += loss.detach()
        self.correct_acc += correct

    # public API ---------------------------------------------------------------------------
    def prepare(self, warmup: int = 3) -> None:
        """Compile and capture (graph variants): warm-up steps on a side stream, capture one
        step, check two replays train (finite loss, weights move), then undo it all."""
        if not self.cuda_graph:
            if self.compile_scope:  # compile now, so a failure shows here and can fall back
                snap = self._snapshot()
                self.optimizer.zero_grad(set_to_none=True)
                self._body()
                self._restore(snap)
            return
        snap = self._snapshot()
        dev = self.device
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                self.optimizer.zero_grad(set_to_none=True)
                self._body()
        torch.cuda.current_stream(dev).wait_stream(side)
        torch.cuda.synchronize(dev)
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._body()
        self._graph = graph
        self._restore(snap)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        before = [p.detach().clone() for p in trainable]
        graph.replay()
        graph.replay()
        torch.cuda.synchronize(dev)
        loss = float(self.loss_acc)
        if not math.isfinite(loss):
            raise RuntimeError(f"the captured step gives a non-finite loss ({loss})")
        if all(torch.equal(b, p.detach()) for b, p in zip(before, trainable, strict=True)):
            raise RuntimeError("the captured step does not update the weights")
        self._restore(snap)

    def set_epoch_tables(self, mix: np.ndarray | None = None,
                         jitter: np.ndarray | None = None) -> None:
        """Copy the epoch's random draws to the device (before :meth:`start_epoch`): ``mix``
        (steps, 5) rows of ``trainer.data.mixing.mix_table``, ``jitter`` (n, 6) rows of
        ``trainer.data.stain_jitter.jitter_table`` (one row per plan entry)."""
        if mix is not None and self.mix is not None:
            # one row per step actually run: under DDP fewer than this buffer's (it is sized
            # for the whole epoch walked at this rank's batch size)
            rows = min(len(mix), len(self.mix))
            self.mix[:rows].copy_(torch.from_numpy(np.ascontiguousarray(mix[:rows],
                                                                        dtype=np.float32)))
        buf = self.data.jitter
        if jitter is not None and buf is not None:
            rows = min(len(jitter), len(buf))
            buf[:rows].copy_(torch.from_numpy(np.ascontiguousarray(jitter[:rows],
                                                                   dtype=np.float32)))

    def start_epoch(self, perm: np.ndarray, start_step: int = 0, loss_sum: float = 0.0,
                    correct: int = 0) -> None:
        """Walk ``perm`` from ``start_step``: the epoch's permutation of the entries, or one
        rank's share of it (shorter; the rest of the buffer is never reached)."""
        self.perm[: len(perm)].copy_(torch.from_numpy(np.ascontiguousarray(perm,
                                                                           dtype=np.int64)))
        self.pos.fill_(start_step * self.batch_size)
        self.loss_acc.fill_(loss_sum)
        self.correct_acc.fill_(correct)
        self.gstep.fill_(self.global_step)

    def step(self) -> None:
        if self._graph is not None:
            self._graph.replay()
        else:
            lr = self.schedule.at(self.global_step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.zero_grad(set_to_none=True)
            self._body()
        self.global_step += 1

    def read(self) -> tuple[float, int]:
        """(sum of batch-mean losses, correct predictions) since the epoch started: the only
        place the host waits for the device."""
        return float(self.loss_acc), int(self.correct_acc)

    @property
    def lr(self) -> float:
        return self.schedule.at(max(self.global_step - 1, 0))

    # undoing warm-up ----------------------------------------------------------------------
    def _snapshot(self) -> dict:
        with torch.no_grad():
            return {
                "params": [p.detach().clone() for p in self.model.parameters()],
                "buffers": [b.detach().clone() for b in self.model.buffers()],
                "opt": {id(p): {k: (v.detach().clone() if torch.is_tensor(v) else v)
                                for k, v in st.items()}
                        for p, st in self.optimizer.state.items()},
                "counters": (self.global_step,),
            }

    def _restore(self, snap: dict) -> None:
        with torch.no_grad():
            for p, saved in zip(self.model.parameters(), snap["params"], strict=True):
                p.copy_(saved)
            for b, saved in zip(self.model.buffers(), snap["buffers"], strict=True):
                b.copy_(saved)
            for param, st in self.optimizer.state.items():
                saved = snap["opt"].get(id(param))
                for k, v in st.items():
                    if not torch.is_tensor(v):
                        continue
                    if saved is not None and k in saved:
                        v.copy_(saved[k])
                    else:  # state created by the warm-up: back to a fresh optimiser's zeros
                        v.zero_()
            self.loss_acc.zero_()
            self.correct_acc.zero_()
            self.pos.zero_()
            (self.global_step,) = snap["counters"]
            self.gstep.fill_(self.global_step)


# ---- choosing the fastest step that works -------------------------------------------------
def make_optimizer(
    model: torch.nn.Module, kind: str, lr: float, weight_decay: float, device: torch.device,
    cuda_graph: bool = False,
) -> torch.optim.Optimizer:
    """Adam or AdamW (decoupled weight decay) over the trainable parameters. On CUDA the
    fused implementation; for a CUDA graph capturable, with the learning rate a device tensor
    (the graph updates it)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(kind.lower())
    if cls is None:
        raise ValueError(f"unknown optimizer {kind!r} (adam, adamw)")
    kwargs: dict = {"lr": lr, "weight_decay": weight_decay}
    if device.type == "cuda":
        kwargs["fused"] = True
        if cuda_graph:
            kwargs["capturable"] = True
            kwargs["lr"] = torch.tensor(lr, dtype=torch.float32, device=device)
    try:
        return cls(params, **kwargs)
    except (RuntimeError, ValueError, TypeError):
        if not kwargs.pop("fused", False):
            raise
        kwargs["foreach"] = True  # an older torch without this fused variant
        return cls(params, **kwargs)


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Load the per-parameter state (moments, step counts) of ``saved`` but keep this
    optimiser's settings (fused, capturable, tensor learning rate): a run saved on the CPU can
    resume in a CUDA graph and the other way round."""
    current = optimizer.state_dict()
    if len(saved.get("state", {})) and max(saved["state"]) >= sum(
            len(g["params"]) for g in current["param_groups"]):
        raise ValueError("the saved optimiser state is for a different set of parameters")
    optimizer.load_state_dict({"state": saved["state"], "param_groups": current["param_groups"]})


def build_stepper(
    model: CellClassifier,
    optimizer_factory: Callable[[bool], torch.optim.Optimizer],
    data: StepData,
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    schedule: LrSchedule,
    *,
    forward: str = "model",
    want_compile: bool = False,
    want_graph: bool = False,
    optimizer_state: dict | None = None,
    global_step: int = 0,
    notice: Callable[[str], None] | None = None,
    channels_last: bool = False,
    forward_module: torch.nn.Module | None = None,
    mixing: bool = False,
) -> TrainStepper:
    """The fastest working :class:`TrainStepper`; each variant that fails is reported through
    ``notice`` with its reason and the next is tried (eager always remains)."""
    plans: list[tuple[str, str | None, bool]] = []
    if want_graph and device.type == "cuda":
        if want_compile:
            plans += [("compile+cuda-graph", "step", True),
                      ("compile(model)+cuda-graph", "model", True)]
        plans.append(("cuda-graph", None, True))
    elif want_compile:
        plans.append(("compile", "step", False))
    plans.append(("eager", None, False))
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for name, scope, graph in plans:
        optimizer = optimizer_factory(graph)
        if optimizer_state is not None:
            load_optimizer_state(optimizer, optimizer_state)
        try:
            stepper = TrainStepper(model, optimizer, data, batch_size, device, amp_dtype,
                                   schedule, forward=forward, compile_scope=scope,
                                   cuda_graph=graph, name=name, channels_last=channels_last,
                                   forward_module=forward_module, mixing=mixing)
            stepper.global_step = global_step
            stepper.prepare()
            return stepper
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:
            if name == "eager":
                raise
            reason = (str(exc).strip().splitlines() or [""])[0][:300]
            if notice is not None:
                notice(f"training step variant {name} failed ({type(exc).__name__}: {reason}); "
                       "falling back to the next")
            with torch.no_grad():
                model.load_state_dict(saved)
            for p in model.parameters():
                p.grad = None
            if device.type == "cuda":
                torch.cuda.synchronize(device)
    raise AssertionError("unreachable")
