"""CLI commands of sweeps: ``sweep``, ``sweep-worker`` (one grid point, for ``--parallel``),
``sweep-merge`` and ``report``. Heavy imports happen inside the commands."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from trainer.cli import command, emit_error_event


def _emitter(as_json: bool):
    from trainer.formats.protocol import encode_event

    def emit(event: str, **fields) -> None:
        import time

        if as_json:
            try:
                sys.stdout.write(encode_event(event, t=round(time.time(), 3), **fields) + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass
            return
        if event == "sweep_started":
            print(f"sweep: {fields['runs']} of {fields['grid']} grid points in this shard, "
                  f"{fields['complete']} complete already", file=sys.stderr)
        elif event == "run_started":
            print(f"[{fields['run_id']}] {fields['state']}", file=sys.stderr)
        elif event == "epoch":
            print(f"[{fields.get('run_id')}] epoch {fields.get('epoch')}/{fields.get('epochs')} "
                  f"val_acc {fields.get('val_acc', 0):.4f}", file=sys.stderr)
        elif event in ("run_done", "error", "notice", "sweep_finished"):
            print(f"{event}: {json.dumps(fields)}", file=sys.stderr)

    return emit


def _fail(exc: BaseException) -> int:
    from trainer.formats.errors import classify_exception

    kind, message = classify_exception(exc)
    sys.stderr.write(f"error ({kind.value}): {message}\n")
    emit_error_event(kind, message)
    return 2


def _csv(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _add_sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", type=Path, help="a sweep specification (JSON); flags "
                   "override its fields")
    p.add_argument("--out", dest="sweep_dir", type=Path, required=True,
                   help="the sweep folder (created; rerun the command to resume)")
    p.add_argument("--models", type=_csv, help="comma-separated model names (name:mode for a "
                   "foundation model, e.g. uni:lp)")
    p.add_argument("--flag-limits", type=_csv, help="comma-separated FlagLimits ('all': none)")
    p.add_argument("--seeds", type=_csv, help="comma-separated seeds")
    p.add_argument("--patchset", help="the training patch set")
    p.add_argument("--val-patchset", help="a separate validation patch set")
    p.add_argument("--test-patchset", help="a test patch set every run is evaluated on")
    for flag, kind in (("--epochs", int), ("--batch-size", int), ("--lr", float),
                       ("--weight-decay", float), ("--patience", int), ("--threads", int),
                       ("--eval-batch-size", int)):
        p.add_argument(flag, type=kind, help="passed to every run's training")
    p.add_argument("--device", help="passed to every run (auto, cpu, cuda...)")
    p.add_argument("--weights", help="foundation models: the local weights file")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--sigmas", help="comma-separated blur sigmas (default the study's)")
    p.add_argument("--robustness", action=argparse.BooleanOptionalAction, default=None,
                   help="measure blur robustness per run (default on)")
    p.add_argument("--cost", action=argparse.BooleanOptionalAction, default=None,
                   help="measure parameters, size, latency and GFLOPs per run (default on)")
    p.add_argument("--latency-runs", type=int, help="batch-1 forward passes timed (default 400)")
    p.add_argument("--parallel", type=int, default=1,
                   help="runs at once, each in its own process (one per GPU where there are "
                        "GPUs; default 1: in this process)")
    p.add_argument("--shard", help="i/n: run only the i-th of n parts of the grid (0-based, "
                   "e.g. $SLURM_ARRAY_TASK_ID/$N)")
    p.add_argument("--json", action=argparse.BooleanOptionalAction, default=None,
                   help="protocol lines on stdout (default: unless stdout is a terminal)")


_TRAIN_FLAGS = {"epochs": "epochs", "batch_size": "batch_size", "lr": "lr",
                "weight_decay": "weight_decay", "patience": "patience", "threads": "num_threads",
                "eval_batch_size": "eval_batch_size", "device": "device", "weights": "weights",
                "augment": "augment"}


def _sweep_spec(args: argparse.Namespace):
    from trainer.formats.config import ConfigError
    from trainer.formats.sweep import SweepSpec

    data: dict = {}
    where = "command line"
    if args.spec is not None:
        where = str(args.spec)
        try:
            data = json.loads(args.spec.read_text())
        except OSError as exc:
            raise ConfigError(f"{args.spec}: cannot read ({exc.strerror or exc})") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{args.spec}: not valid JSON (line {exc.lineno}: {exc.msg})") \
                from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{args.spec}: expected a JSON object")
    for key in ("patchset", "val_patchset", "test_patchset"):
        if getattr(args, key):
            data[key] = getattr(args, key)
    if args.models:
        data["models"] = args.models
    if args.flag_limits:
        data["flag_limits"] = args.flag_limits
    if args.seeds:
        try:
            data["seeds"] = [int(s) for s in args.seeds]
        except ValueError:
            raise ConfigError(f"--seeds must be integers, not {args.seeds}") from None
    train = dict(data.get("train") or {})
    for flag, field in _TRAIN_FLAGS.items():
        if getattr(args, flag) is not None:
            train[field] = getattr(args, flag)
    data["train"] = train
    if args.sigmas:
        data["sigmas"] = [float(s) for s in _csv(args.sigmas)]
    for key in ("robustness", "cost"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.latency_runs is not None:
        data["latency_runs"] = args.latency_runs
    return SweepSpec.from_dict(data, where)


@command("sweep", "train and measure a grid of runs (models x FlagLimits x seeds); resumable",
         _add_sweep_args)
def cmd_sweep(args: argparse.Namespace) -> int:
    from trainer.engine.control import StopControl
    from trainer.formats.sweep import parse_shard
    from trainer.sweep.runner import run_sweep

    as_json = args.json if args.json is not None else not sys.stdout.isatty()
    try:
        spec = _sweep_spec(args)
        shard = parse_shard(args.shard) if args.shard else None
        if args.parallel < 1:
            raise ValueError("--parallel must be at least 1")
    except Exception as exc:
        return _fail(exc)
    control = StopControl()
    control.install_signal_handlers()
    try:
        left = run_sweep(spec, args.sweep_dir, _emitter(as_json), parallel=args.parallel,
                         shard=shard, stop=control.event)
    except Exception as exc:
        return _fail(exc)
    return 0 if left == 0 else 1


def _add_worker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep_dir", type=Path)
    p.add_argument("run_id")


@command("sweep-worker", "one grid point of a sweep (what sweep --parallel starts)",
         _add_worker_args)
def cmd_sweep_worker(args: argparse.Namespace) -> int:
    from trainer.engine.control import StopControl
    from trainer.formats.sweep import SPEC_FILE, SweepSpec
    from trainer.sweep.run import COMPLETE, EXIT_STOPPED, execute_run
    from trainer.sweep.runner import class_counts

    try:
        spec = SweepSpec.load(args.sweep_dir / SPEC_FILE)
        runs = {r.run_id: r for r in spec.grid(class_counts(spec.patchset))}
        if args.run_id not in runs:
            raise ValueError(f"{args.sweep_dir}: the sweep has no run {args.run_id!r}")
    except Exception as exc:
        return _fail(exc)
    control = StopControl()
    control.install_signal_handlers()
    status = execute_run(spec, args.sweep_dir, runs[args.run_id], _emitter(True), control.event)
    return 0 if status == COMPLETE else EXIT_STOPPED if status == "stopped" else 1


def _add_merge_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep_dir", type=Path, help="the sweep folder to merge into")
    p.add_argument("shards", nargs="*", type=Path,
                   help="shards' sweep folders (none: rebuild results.csv of sweep_dir)")


@command("sweep-merge", "merge shards' sweep folders into one and rebuild results.csv",
         _add_merge_args)
def cmd_sweep_merge(args: argparse.Namespace) -> int:
    try:
        merged = merge_sweeps(args.sweep_dir, args.shards)
        from trainer.formats.sweep_results import write_sweep_results

        path = write_sweep_results(args.sweep_dir)
    except Exception as exc:
        return _fail(exc)
    print(f"{merged} run folders merged; {path}")
    return 0


def merge_sweeps(dest: Path, shards: list[Path]) -> int:
    """Copy the complete runs of each shard folder into ``dest`` (same specification; a run
    already complete in ``dest`` is kept). Returns the number of run folders copied."""
    from trainer.formats.config import ConfigError
    from trainer.formats.sweep import RUNS_DIR, SPEC_FILE, SweepSpec
    from trainer.sweep.run import COMPLETE, run_state

    dest.mkdir(parents=True, exist_ok=True)
    copied = 0
    for shard in shards:
        spec_path = shard / SPEC_FILE
        if not spec_path.is_file():
            raise ConfigError(f"{shard}: not a sweep folder (no {SPEC_FILE})")
        spec = SweepSpec.load(spec_path)
        if (dest / SPEC_FILE).is_file():
            mine = SweepSpec.load(dest / SPEC_FILE).to_dict()
            differ = sorted(k for k, v in spec.to_dict().items() if mine.get(k) != v)
            if differ:
                raise ConfigError(f"{shard}: another sweep than {dest} (differs in "
                                  f"{', '.join(differ)})")
        else:
            spec.save(dest / SPEC_FILE)
        for run in sorted((shard / RUNS_DIR).glob("*")):
            target = dest / RUNS_DIR / run.name
            if not run.is_dir() or run_state(run) != COMPLETE:
                continue
            if target.exists() and run_state(target) == COMPLETE:
                continue
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(run, target)
            copied += 1
    return copied


def _add_report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep_dir", type=Path, nargs="+", help="sweep folder(s) or run folders")
    p.add_argument("--out", type=Path, required=True, help="the HTML file (PNG/CSV beside it)")
    p.add_argument("--title", default="Sweep report")


@command("report", "the study's tables and figures of a sweep, as one self-contained HTML file",
         _add_report_args)
def cmd_report(args: argparse.Namespace) -> int:
    from trainer.sweep.report import write_report

    try:
        paths = write_report(args.sweep_dir, args.out, title=args.title)
    except Exception as exc:
        return _fail(exc)
    print(f"written: {args.out} ({len(paths)} files beside it)")
    return 0
