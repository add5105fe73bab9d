"""Training on several processes: ``torchrun --nproc-per-node N -m trainer train …``.

torchrun starts N copies of the ``train`` command with ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` in their environment; :func:`from_env` reads them (a plain run has none, and a
world of one is a plain run). Each process (a *rank*) then:

- trains on its own device (``cuda:LOCAL_RANK``, or the CPU) with the model wrapped in
  ``DistributedDataParallel`` (backend ``nccl`` on CUDA, ``gloo`` on the CPU), whose backward
  averages the gradients over the ranks;
- builds the same FlagLimit sample, augmented index and per-epoch permutation as every other
  rank (they depend only on the seed), and takes its share of each global batch
  (:func:`rank_share`): the configured batch stays the global batch, each rank steps
  ``batch / world`` entries of it, so one DDP step is one single-process step of the same
  entries (up to the reduction order and per-rank batch norm statistics);
- validates its slice of the validation cells; the logits are gathered, so every rank computes
  the same metrics and takes the same early-stopping decision.

Only rank 0 writes: the protocol lines, events.jsonl, metrics.csv and the model files (of the
unwrapped model: the same files as a single-process run's). Control decisions are collective:
after each step the ranks all-reduce a small flag vector (a stop asked for on any rank, a
heartbeat due on rank 0), on a gloo group so that it never waits for a GPU.

A rank that fails ends the run rather than hanging it: it leaves its message in the process
group's store and exits; the others' next collective fails (gloo: the connection closes;
NCCL: the ``timeout``), torchrun stops the rest, and rank 0 reports an ``error`` event of kind
``rank-failed`` naming the rank and its cause, with the model file to resume from.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import torch

from trainer.formats.errors import TrainerError
from trainer.formats.protocol import ErrorKind

#: seconds a collective may wait for the slowest rank before the run is declared failed
TIMEOUT_ENV = "TRAINER_DDP_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600.0
_FAILED_KEY = "cellviewer/failed/{rank}"


class RankFailedError(TrainerError):
    """Another rank failed or vanished; the message says which and why, where known."""

    kind = ErrorKind.RANK_FAILED


@dataclass
class Dist:
    """This process's place in a run: rank ``rank`` of ``world`` (``world == 1``: a plain run,
    every method a no-op)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None
    control: Any = field(default=None, repr=False)  # the gloo group of the control flags
    device: torch.device | None = None

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- set-up -------------------------------------------------------------------------
    def rank_device(self, device: torch.device) -> torch.device:
        """The device this rank trains on, given the configuration's: its own GPU
        (``cuda:LOCAL_RANK``) on CUDA, the CPU on the CPU; Apple MPS has no backend."""
        if not self.active:
            return device
        if device.type == "cuda":
            count = torch.cuda.device_count()
            if self.local_rank >= count:
                raise TrainerError(f"torchrun started more processes on this machine than it "
                                   f"has CUDA GPUs ({count}): use --nproc-per-node {count}",
                                   ErrorKind.DEVICE)
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        if device.type != "cpu":
            raise TrainerError(f"training on several processes needs CUDA GPUs or the CPU, "
                               f"not {device.type!r}", ErrorKind.DEVICE)
        return device

    def init(self, device: torch.device) -> None:
        """Join the process group (a rendezvous: returns once every rank is here)."""
        if not self.active:
            return
        import torch.distributed as dist

        self.device = device
        self.backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = timedelta(seconds=timeout_s())
        dist.init_process_group(self.backend, rank=self.rank, world_size=self.world,
                                timeout=timeout)
        self.control = dist.new_group(backend="gloo", timeout=timeout) \
            if self.backend != "gloo" else None

    def close(self) -> None:
        """Leave the process group at the end of a finished run, all ranks together: a rank
        that tore its gloo group down while rank 0 was still writing the model files could die
        in C++ ("terminate called without an active exception", SIGABRT: seen in 1 of ~3 runs
        on a loaded 2-core machine), and torchrun then failed the whole run."""
        import torch.distributed as dist

        if self.active and dist.is_initialized():
            dist.barrier(group=self.control)
            dist.destroy_process_group()

    # -- collectives ------------------------------------------------------------------
    def agree(self, stop: bool, beat: bool) -> tuple[bool, bool, list[int]]:
        """(stop, heartbeat, the ranks that asked to stop): a stop asked for on any rank,
        a heartbeat when rank 0's is due; every rank gets the same answer."""
        if not self.active:
            return stop, beat, [0] if stop else []
        import torch.distributed as dist

        flags = torch.zeros(self.world + 1, dtype=torch.int32)
        flags[self.rank] = int(stop)
        if self.is_main:
            flags[self.world] = int(beat)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.control)
        asked = [r for r in range(self.world) if flags[r]]
        return bool(asked), bool(flags[self.world]), asked

    def sums(self, loss_sum: float, correct: int) -> tuple[float, int]:
        """The global batch's (sum of batch-mean losses, correct predictions) from each
        rank's own: the mean of the ranks' means (equal shares) and the sum of the counts."""
        if not self.active:
            return loss_sum, correct
        import torch.distributed as dist

        t = torch.tensor([loss_sum, float(correct)], dtype=torch.float64)
        dist.all_reduce(t, group=self.control)
        return float(t[0]) / self.world, int(round(float(t[1])))

    def broadcast(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rank 0's ``tensor`` on every rank (in place)."""
        if self.active:
            import torch.distributed as dist

            dist.broadcast(tensor, src=0)
        return tensor

    def val_slice(self, n: int) -> slice:
        """This rank's contiguous slice of ``n`` validation cells."""
        bounds = np.linspace(0, n, self.world + 1).round().astype(int)
        return slice(int(bounds[self.rank]), int(bounds[self.rank + 1]))

    def gather_rows(self, part: torch.Tensor, n: int) -> torch.Tensor:
        """The ranks' :meth:`val_slice` rows of an (n, …) result, concatenated in order."""
        if not self.active:
            return part
        import torch.distributed as dist

        bounds = np.linspace(0, n, self.world + 1).round().astype(int)
        longest = int(np.diff(bounds).max())
        padded = part.new_zeros((longest, *part.shape[1:]))
        padded[: len(part)] = part
        chunks = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(chunks, padded.contiguous())
        return torch.cat([c[: bounds[r + 1] - bounds[r]] for r, c in enumerate(chunks)])

    # -- failures -----------------------------------------------------------------------
    def report_failure(self, message: str) -> None:
        """Leave this rank's failure in the store for rank 0 to name (best effort)."""
        store = self._store()
        if store is not None:  # if the store went too, rank 0 still learns of the failure
            with contextlib.suppress(Exception):
                store.set(_FAILED_KEY.format(rank=self.rank), message[:2000])

    def peer_failure(self, exc: BaseException, resume_hint: str) -> RankFailedError | None:
        """On rank 0: the :class:`RankFailedError` that ``exc`` stands for when another rank
        failed (its message from the store, or that it vanished), else None (a failure of
        this rank's own)."""
        if not self.active or not looks_like_peer_loss(exc):
            return None
        causes = self._failures()
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        if causes:
            rank, cause = causes[0]
            what = f"training process rank {rank} of {self.world} failed: {cause}"
        else:
            what = (f"another training process of the {self.world} stopped answering "
                    f"(killed, or it crashed; see its messages on stderr): {first}")
        return RankFailedError(f"{what}. {resume_hint}")

    def _failures(self) -> list[tuple[int, str]]:
        store = self._store()
        out: list[tuple[int, str]] = []
        if store is None:
            return out
        for rank in range(self.world):
            key = _FAILED_KEY.format(rank=rank)
            try:
                if rank != self.rank and store.check([key]):
                    out.append((rank, store.get(key).decode("utf-8", errors="replace")))
            except Exception:
                break
        return out

    @staticmethod
    def _store():
        try:
            from torch.distributed import distributed_c10d

            return distributed_c10d._get_default_store()
        except Exception:  # not initialised, or the private helper moved
            return None


def looks_like_peer_loss(exc: BaseException) -> bool:
    """A collective that failed because a peer went away or never answered."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"DistError", "DistBackendError", "DistNetworkError", "DistStoreError"}:
        return True
    text = str(exc).lower()
    return any(s in text for s in ("connection closed", "connection reset", "broken pipe",
                                   "timed out", "timeout", "gloo", "nccl"))


def timeout_s(environ: Mapping[str, str] = os.environ) -> float:
    raw = environ.get(TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        value = DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


def from_env(environ: Mapping[str, str] = os.environ) -> Dist:
    """This process's rank as torchrun set it (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); a
    plain :class:`Dist` (one process) without them."""
    try:
        world = int(environ.get("WORLD_SIZE", "1"))
        rank = int(environ.get("RANK", "0"))
        local = int(environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise TrainerError(f"bad torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK): {exc}",
                           ErrorKind.BAD_CONFIG) from exc
    if world <= 1:
        return Dist()
    if not 0 <= rank < world:
        raise TrainerError(f"bad torchrun environment: RANK={rank} with WORLD_SIZE={world}",
                           ErrorKind.BAD_CONFIG)
    return Dist(rank=rank, world=world, local_rank=local)


def rank_share(perm: np.ndarray, steps: int, batch: int, world: int, rank: int) -> np.ndarray:
    """Rank ``rank``'s entries of an epoch: global step s trains ``perm[s*batch:(s+1)*batch]``,
    of which rank r takes the r-th of ``world`` equal parts; concatenated over the steps, so a
    stepper of batch ``batch // world`` walks them in order."""
    per_rank = batch // world
    used = np.asarray(perm[: steps * batch]).reshape(steps, world, per_rank)
    return np.ascontiguousarray(used[:, rank, :].reshape(-1))


def watch_parent(on_gone, interval_s: float = 1.0) -> threading.Thread:
    """Call ``on_gone()`` once when this process's parent (torchrun's agent) has gone: a
    killed agent cannot stop its workers, so they stop themselves (and save)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        on_gone()

    thread = threading.Thread(target=watch, name="trainer-parent-watch", daemon=True)
    thread.start()
    return thread
