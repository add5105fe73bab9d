"""Running a sweep's grid: its shard's points one after another, or N at once in worker
processes, then ``results.csv`` rebuilt from every run folder of the sweep.

- ``parallel=1``: the points run in this process (no start-up cost per run; killing this
  process kills the training, which resumes next time).
- ``parallel=N``: each point runs in ``python -m trainer sweep-worker SWEEP_DIR RUN_ID``, N at
  a time; with CUDA GPUs, worker k sees one GPU only (``CUDA_VISIBLE_DEVICES``, round robin),
  on the CPU each gets ``cores // N`` threads. The workers' events come back tagged with their
  run id. On Linux a worker is sent SIGTERM if the sweep dies (``PR_SET_PDEATHSIG``), so no
  orphan keeps training a folder the next sweep resumes; a stop request (SIGTERM, Ctrl-C) is
  passed on to the workers, which save their state and stop.
- ``shard=(i, n)``: only the i-th part of the grid (:func:`trainer.formats.sweep.shard_runs`).
  Shards may share the sweep folder (a cluster's shared disk: each writes its own run folders
  and rebuilds ``results.csv`` from all of them) or use folders of their own, joined later with
  ``sweep-merge``.

Events (JSON lines, like ``train``): ``sweep_started`` (grid size, this shard's points, how
many are complete already), ``run_started`` (run id, state), the runs' ``epoch``/``notice``/
``error`` events with their ``run_id``, ``run_done`` (status), ``sweep_finished`` (counts,
results path).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from trainer.formats.config import ConfigError
from trainer.formats.protocol import parse_line
from trainer.formats.sweep import RUNS_DIR, SPEC_FILE, SweepRun, SweepSpec, shard_runs
from trainer.formats.sweep_results import write_sweep_results
from trainer.sweep.run import COMPLETE, EXIT_STOPPED, execute_run, run_dir_of, run_state

Emit = Callable[..., None]


def class_counts(patchset: str) -> np.ndarray:
    from trainer.formats.patchset import PatchSetError, load_patchset

    if not Path(patchset).exists():
        raise PatchSetError(f"{patchset}: patch set not found")
    ps = load_patchset(patchset, mmap=True)
    labels = np.asarray(ps.labels, dtype=np.int64)
    return np.bincount(labels[labels >= 0], minlength=len(ps.classes))


def prepare_sweep(spec: SweepSpec, sweep_dir: Path) -> list[SweepRun]:
    """Write (or check) ``sweep.json``; the whole grid. A sweep folder keeps one
    specification: a different one is refused, naming what differs."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / RUNS_DIR).mkdir(exist_ok=True)
    path = sweep_dir / SPEC_FILE
    if path.is_file():
        old = SweepSpec.load(path).to_dict()
        new = spec.to_dict()
        differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if differ:
            raise ConfigError(f"{path}: this sweep folder holds another sweep (it differs in "
                              f"{', '.join(differ)}); use a new --out folder")
    else:
        spec.save(path)
    return spec.grid(class_counts(spec.patchset))


def run_sweep(spec: SweepSpec, sweep_dir: str | os.PathLike, emit: Emit, *, parallel: int = 1,
              shard: tuple[int, int] | None = None, stop: threading.Event | None = None) -> int:
    """Run this shard's incomplete grid points; returns the number that did not complete."""
    sweep_dir = Path(sweep_dir)
    grid = prepare_sweep(spec, sweep_dir)
    mine = shard_runs(grid, shard)
    states = {r.run_id: run_state(run_dir_of(sweep_dir, r)) for r in mine}
    todo = [r for r in mine if states[r.run_id] != COMPLETE]
    emit("sweep_started", sweep_dir=str(sweep_dir), grid=len(grid), shard=list(shard or (0, 1)),
         runs=len(mine), complete=len(mine) - len(todo),
         resumable=sum(1 for s in states.values() if s == "resumable"),
         run_ids=[r.run_id for r in mine], parallel=parallel)
    stop = stop if stop is not None else threading.Event()
    t0 = time.monotonic()
    if parallel <= 1:
        outcomes = {}
        for r in todo:
            if stop.is_set():
                break
            outcomes[r.run_id] = execute_run(spec, sweep_dir, r, emit, stop)
    else:
        outcomes = _run_workers(sweep_dir, todo, parallel, emit, stop,
                                str(spec.train.get("device", "auto")))
    results = write_sweep_results(sweep_dir)
    failed = [rid for rid, status in outcomes.items() if status != COMPLETE]
    not_run = len(todo) - len(outcomes)
    emit("sweep_finished", complete=sum(1 for s in outcomes.values() if s == COMPLETE),
         failed=failed, not_run=not_run, results=str(results),
         elapsed_s=round(time.monotonic() - t0, 3))
    return len(failed) + not_run


# ---- worker processes -------------------------------------------------------------------------
def _gpu_count(device: str) -> int:
    if device == "cpu" or device == "mps":
        return 0
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux only)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def worker_command(sweep_dir: Path, run_id: str) -> list[str]:
    return [sys.executable, "-m", "trainer", "sweep-worker", str(sweep_dir), run_id]


def _run_workers(sweep_dir: Path, todo: list[SweepRun], parallel: int, emit: Emit,
                 stop: threading.Event, device: str) -> dict[str, str]:
    gpus = _gpu_count(device)
    cores = os.cpu_count() or 1
    lines: queue.Queue = queue.Queue()
    pending = list(todo)
    active: dict[str, tuple[subprocess.Popen, int]] = {}
    outcomes: dict[str, str] = {}
    free_slots = list(range(parallel))

    def reader(run_id: str, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put((run_id, line))

    while pending or active:
        while pending and free_slots and not stop.is_set():
            run = pending.pop(0)
            slot = free_slots.pop(0)
            env = dict(os.environ)
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
            elif "OMP_NUM_THREADS" not in env:
                env["OMP_NUM_THREADS"] = str(max(1, cores // parallel))
            proc = subprocess.Popen(
                worker_command(sweep_dir, run.run_id), stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL, text=True, env=env,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
            active[run.run_id] = (proc, slot)
            threading.Thread(target=reader, args=(run.run_id, proc), daemon=True).start()
        if stop.is_set():
            for proc, _ in active.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            if not active:
                break
        try:
            run_id, line = lines.get(timeout=0.2)
            event = parse_line(line)
            if event is not None:
                fields = {k: v for k, v in event.items() if k not in ("v", "event", "t")}
                emit(event["event"], **fields)
        except queue.Empty:
            pass
        for run_id, (proc, slot) in list(active.items()):
            if proc.poll() is not None and lines.empty():
                del active[run_id]
                free_slots.append(slot)
                outcomes[run_id] = {0: COMPLETE, EXIT_STOPPED: "stopped"}.get(
                    proc.returncode, "error")
    return outcomes
