"""One grid point of a sweep: train it (or resume it, or skip it), then measure it.

Where a run stands is read from its folder, never from the sweep's memory, so a sweep killed
at any moment (Ctrl-C, a Slurm preemption, a power cut) picks up where it was:

- **complete**: ``sweep_run.json`` says so: skipped;
- **trained**: its ``events.jsonl`` ends its last attempt with ``finished`` for another reason
  than a stop request and the best model exists: only the measurements run again;
- **resumable**: ``last.cvmodel`` holds the training state (the trainer writes it after every
  epoch, and at the batch where a stop request lands): training continues from it with the
  trainer's own resume (``run_training(resume_from=...)``, the optimiser state, the early
  stopping counters and the position in the epoch included); a run killed hard mid-epoch
  repeats that epoch from its last completed one;
- **fresh**: nothing usable (killed before its first epoch ended): the folder is cleared and
  the run starts from scratch.

Measurements, all on the best model: the test patch set (``test_evaluation.json``/CSV, when
the sweep has one), blur robustness on the run's validation cells (``robustness.json``, the
file the app's run list reads) and the cost (``cost.json``: parameters, MB, batch-1 latency
on this run's device, GFLOPs per patch).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from trainer.formats.protocol import StopReason, parse_line
from trainer.formats.sweep import COST_FILE, RUN_RECORD, RUNS_DIR, TEST_PREFIX, SweepRun, SweepSpec

COMPLETE, TRAINED, RESUMABLE, FRESH = "complete", "trained", "resumable", "fresh"
#: a worker's exit code when a stop request (SIGTERM, Ctrl-C) ended its run early
EXIT_STOPPED = 3


def run_dir_of(sweep_dir: Path, run: SweepRun) -> Path:
    return Path(sweep_dir) / RUNS_DIR / run.run_id


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _last_attempt_end(run_dir: Path) -> dict | None:
    """The terminal event (finished/error) of the run's last attempt, or None."""
    end = None
    try:
        with open(run_dir / "events.jsonl", encoding="utf-8") as fh:
            for line in fh:
                e = parse_line(line)
                if not e:
                    continue
                if e.get("event") == "started":
                    end = None
                elif e.get("event") in ("finished", "error"):
                    end = e
    except OSError:
        return None
    return end


def run_state(run_dir: Path) -> str:
    """COMPLETE, TRAINED, RESUMABLE or FRESH (see the module docstring)."""
    if _read_json(run_dir / RUN_RECORD).get("complete"):
        return COMPLETE
    end = _last_attempt_end(run_dir)
    trained = end is not None and end.get("event") == "finished" \
        and end.get("reason") != StopReason.STOP_REQUEST
    if trained and (run_dir / "best.cvmodel").is_file():
        return TRAINED
    last = run_dir / "last.cvmodel"
    if last.is_file():
        try:
            from trainer.formats.model_header import read_model_header

            if "train_state" in read_model_header(last):
                return RESUMABLE
        except Exception:  # a damaged last model: start again
            pass
    return FRESH


def execute_run(spec: SweepSpec, sweep_dir: Path, run: SweepRun,
                emit: Callable[..., None], stop=None) -> str:
    """Bring grid point ``run`` to complete. Returns "complete", "stopped" or "error"
    (events through ``emit(event, **fields)``, each tagged with the run id)."""
    from trainer.engine.events import EventSink
    from trainer.engine.loop import LAST_MODEL, run_training

    run_dir = run_dir_of(sweep_dir, run)
    state = run_state(run_dir)
    emit("run_started", run_id=run.run_id, state=state, run_dir=str(run_dir))
    if state == COMPLETE:
        return COMPLETE
    t0 = time.monotonic()
    if state in (RESUMABLE, FRESH):
        if state == FRESH and run_dir.exists():
            shutil.rmtree(run_dir)  # a start that never finished an epoch: nothing to keep
        cfg = spec.run_config(run, str(run_dir))

        def forward(event: dict) -> None:
            if event["event"] in ("epoch", "notice", "error"):
                fields = {k: v for k, v in event.items() if k not in ("v", "event", "t")}
                emit(event["event"], run_id=run.run_id, **fields)

        sink = EventSink(listeners=[forward])
        result = run_training(cfg, sink=sink, stop=stop,
                              resume_from=run_dir / LAST_MODEL if state == RESUMABLE else None,
                              log=lambda m: None)
        if result.status == "error":
            _write_record(run_dir, run, {"complete": False, "error": result.error})
            emit("run_done", run_id=run.run_id, status="error", message=result.error)
            return "error"
        if result.status == "stopped":
            emit("run_done", run_id=run.run_id, status="stopped")
            return "stopped"
    try:
        measured = measure_run(spec, run_dir)
    except Exception as exc:  # reported; the run stays "trained" and is measured next time
        from trainer.formats.errors import classify_exception

        kind, message = classify_exception(exc)
        _write_record(run_dir, run, {"complete": False, "error": message})
        emit("run_done", run_id=run.run_id, status="error", kind=kind, message=message)
        return "error"
    record = _write_record(run_dir, run, {"complete": True, "resumed": state == RESUMABLE,
                                          "measured": measured,
                                          "wall_s": round(time.monotonic() - t0, 3)})
    emit("run_done", run_id=run.run_id, status="complete", **{
        k: record[k] for k in ("flag_limit", "seed", "model")})
    return COMPLETE


def _write_record(run_dir: Path, run: SweepRun, fields: dict) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {**run.record(), **fields}
    tmp = run_dir / (RUN_RECORD + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(run_dir / RUN_RECORD)
    return record


# ---- measurements -----------------------------------------------------------------------------
def measure_run(spec: SweepSpec, run_dir: Path) -> list[str]:
    """Test evaluation, blur robustness and cost of the run's best model; returns what was
    measured."""
    from trainer.evaluate import select_eval_data, write_report
    from trainer.metrics import classification_metrics
    from trainer.predict import Predictor

    best = run_dir / "best.cvmodel"
    device = str(spec.train.get("device", "auto"))
    batch = int(spec.train.get("eval_batch_size", 1024))
    predictor = Predictor.load(best, device=device)
    done = []
    if spec.test_patchset:
        data = select_eval_data(best, predictor.classes, spec.test_patchset)
        probs = predictor.predict(data.patches, batch_size=batch).probs
        m = classification_metrics(data.y, probs.argmax(axis=1), len(predictor.classes))
        write_report(run_dir, m, predictor.classes,
                     {"model": str(best), "data": data.description, "left_out": data.left_out},
                     prefix=TEST_PREFIX)
        done.append("test")
    if spec.robustness:
        from trainer.formats.blur import SIGMAS
        from trainer.robustness import blur_robustness

        data = select_eval_data(best, predictor.classes, None)
        report = blur_robustness(predictor, data.patches, data.y, source_crops=data.source_crops,
                                 sigmas=spec.sigmas or SIGMAS, batch_size=batch)
        report.write(run_dir)
        done.append("robustness")
    if spec.cost:
        from trainer.sweep.cost import model_cost

        cost = model_cost(predictor.model, predictor.device, runs=spec.latency_runs)
        (run_dir / COST_FILE).write_text(json.dumps(cost, indent=2) + "\n")
        done.append("cost")
    return done
