"""CLI commands of the engine: ``train``, ``evaluate``, ``robustness``, ``benchmark``,
``predict``. Heavy imports happen inside the commands so ``python -m trainer --help`` stays
instant."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trainer.cli import command, emit_error_event


# ---- train ----------------------------------------------------------------------------------
def _key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="a run configuration (JSON); flags override it")
    p.add_argument("--patchset", help="the training patch set folder")
    p.add_argument("--val-patchset", help="a separate validation patch set (default: a "
                   "stratified split of --patchset)")
    p.add_argument("--out", dest="out_dir", help="the run folder (created)")
    p.add_argument("--model", help="model name (python -m trainer models lists them)")
    p.add_argument("--flag-limit", type=int, help="FlagLimit: cap per class (default: all)")
    p.add_argument("--epochs", type=int, help="default: the model's")
    p.add_argument("--batch-size", type=int, help="default 512")
    p.add_argument("--lr", type=float, help="default: the model's")
    p.add_argument("--weight-decay", type=float, help="default: the model's")
    p.add_argument("--device", help="auto (default: CUDA, MPS, CPU), cpu, cuda, cuda:N, mps")
    p.add_argument("--seed", type=int)
    p.add_argument("--patience", type=int, help="early-stopping patience (default 10; 0: off)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="the study's 9.6x augmentation (default on)")
    p.add_argument("--mode", choices=["lp", "ft_last"], help="foundation models: adaptation")
    p.add_argument("--weights", help="foundation models: the local weights file")
    p.add_argument("--model-arg", action="append", type=_key_value, default=[],
                   metavar="KEY=VALUE", help="extra model option (JSON value), repeatable")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the training step (default: on for CUDA)")
    p.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=None,
                   help="capture the whole training step as a CUDA graph (default: on for CUDA)")
    p.add_argument("--amp", choices=["auto", "bf16", "off"])
    p.add_argument("--eval-batch-size", type=int)
    p.add_argument("--heartbeat", dest="heartbeat_s", type=float,
                   help="seconds between batch events (default 1)")
    p.add_argument("--threads", dest="num_threads", type=int, help="CPU threads for torch")
    p.add_argument("--init-from", metavar="MODEL", help="start from this model file's weights "
                   "(same architecture; head rows carried over by class name): fine-tuning a "
                   "saved model on new or corrected labels")
    g = p.add_argument_group("training options for small patches (default: the study's "
                             "recipe)")
    g.add_argument("--label-smoothing", type=float, metavar="E",
                   help="cross-entropy label smoothing in [0, 1) (default 0)")
    g.add_argument("--class-balanced-loss", dest="class_balance",
                   choices=["none", "inverse", "effective"],
                   help="per-class loss weights: inverse frequency or the effective number of "
                        "samples (default none)")
    g.add_argument("--class-balance-beta", type=float, metavar="BETA",
                   help="beta of the effective number (default 0.999)")
    g.add_argument("--mixup", type=float, metavar="ALPHA",
                   help="mixup with Beta(ALPHA, ALPHA) weights (default 0: off)")
    g.add_argument("--cutmix", type=float, metavar="ALPHA",
                   help="CutMix with Beta(ALPHA, ALPHA) areas (default 0: off; with --mixup "
                        "half the steps each)")
    g.add_argument("--color-jitter", type=float, metavar="S",
                   help="HED stain jitter strength (0.05 light, 0.2 strong; default 0: off)")
    g.add_argument("--schedule", choices=["constant", "cosine"],
                   help="learning-rate schedule after the warm-up (default: the model's)")
    g.add_argument("--warmup-epochs", type=int, metavar="K",
                   help="linear learning-rate warm-up epochs (default: the model's)")
    p.add_argument("--resume", nargs="?", const="", metavar="PATH",
                   help="continue from a run's last model file (a run folder or a .cvmodel; "
                        "without PATH: the configuration's run folder)")
    p.add_argument("--json", action=argparse.BooleanOptionalAction, default=None,
                   help="protocol lines on stdout (default: unless stdout is a terminal, where "
                        "a progress bar is shown on stderr)")


_CONFIG_FLAGS = ("patchset", "val_patchset", "out_dir", "model", "flag_limit", "epochs",
                 "batch_size", "lr", "weight_decay", "device", "seed", "patience", "augment",
                 "mode", "weights", "compile", "cuda_graph", "amp", "eval_batch_size",
                 "heartbeat_s", "num_threads", "init_from", "label_smoothing",
                 "class_balance", "class_balance_beta", "mixup", "cutmix", "color_jitter",
                 "schedule", "warmup_epochs")


def _train_config(args: argparse.Namespace):
    """The RunConfig and the model file to resume from (or None)."""
    from trainer.engine.loop import LAST_MODEL
    from trainer.engine.modelfile import read_model_meta
    from trainer.formats.config import ConfigError, RunConfig

    overrides = {k: getattr(args, k) for k in _CONFIG_FLAGS if getattr(args, k) is not None}
    resume_path = None
    base = None
    if args.config is not None:
        base = RunConfig.load(args.config).to_dict()
    if args.resume is not None:
        if args.resume:
            p = Path(args.resume)
            resume_path = p / LAST_MODEL if p.is_dir() else p
        else:
            out = overrides.get("out_dir") or (base or {}).get("out_dir")
            if not out:
                raise ConfigError("--resume without a path needs --config or --out")
            resume_path = Path(out) / LAST_MODEL
        if base is None:
            meta = read_model_meta(resume_path)
            base = dict(meta.get("config", {}))
            base.pop("config_version", None)
            base["out_dir"] = str(resume_path.parent)
    if base is None:
        missing = [f"--{n.replace('_', '-')}" if n != "out_dir" else "--out"
                   for n in ("patchset", "out_dir") if n not in overrides]
        if missing:
            raise ConfigError(f"train needs --config or {' and '.join(missing)}")
        base = {}
    base.update(overrides)
    if args.model_arg:
        base["model_args"] = {**base.get("model_args", {}), **dict(args.model_arg)}
    return RunConfig.from_dict(base, str(args.config) if args.config else "command line"), \
        resume_path


def _devices_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


@command("devices", "the GPUs this PyTorch can use, and why none is used where none is",
         _devices_args)
def cmd_devices(args: argparse.Namespace) -> int:
    from trainer.engine.device import gpu_status

    status = gpu_status()
    if args.json:
        print(json.dumps(status, indent=1))
        return 0
    print(f"PyTorch {status['torch']} (CUDA build: {status['cuda_build'] or 'none, CPU only'})")
    for i, name in enumerate(status["cuda_devices"]):
        print(f"cuda:{i}  {name}")
    if status["mps"]:
        print("mps     Apple MPS")
    print("cpu     always available")
    if status["advice"]:
        print("\n" + status["advice"])
    return 0


@command("train", "train a model on a patch set (JSON progress lines on stdout)", _add_train_args)
def cmd_train(args: argparse.Namespace) -> int:
    from trainer.engine.control import StopControl
    from trainer.engine.distributed import from_env, watch_parent
    from trainer.engine.events import EventSink
    from trainer.engine.progress import TerminalProgress
    from trainer.formats.errors import classify_exception

    tty = sys.stdout.isatty()
    as_json = args.json if args.json is not None else not tty
    listeners = [TerminalProgress(sys.stderr)] if (tty or not as_json) else []
    sink = EventSink(stdout=sys.stdout if as_json else None, listeners=listeners)
    try:  # under torchrun: which process of the run this is (one writes, see distributed.py)
        dist = from_env()
    except Exception as exc:
        kind, message = classify_exception(exc)
        sink.emit("error", kind=kind, message=message)
        return 2
    if not dist.is_main:
        sink = EventSink()  # events and files are rank 0's; this rank's errors go to stderr
    try:
        cfg, resume_path = _train_config(args)
    except Exception as exc:  # a refused configuration is still reported as an event
        kind, message = classify_exception(exc)
        sink.emit("error", kind=kind, message=message)
        return 2
    from trainer.engine.events import stderr_log
    from trainer.engine.loop import check_config, run_training

    try:  # an unknown model is refused before any data is read or folder made
        check_config(cfg)
    except Exception as exc:
        kind, message = classify_exception(exc)
        sink.emit("error", kind=kind, message=message)
        return 2
    control = StopControl()
    if dist.is_main:  # a stop line reaches rank 0, which tells the others
        control.watch_stdin()
    control.install_signal_handlers()
    if dist.active:  # torchrun's agent killed: nobody would stop the ranks; they stop
        watch_parent(lambda: control.request("the torchrun process ended"))
    log = stderr_log if dist.is_main else _quiet
    result = run_training(cfg, sink=sink, stop=control, resume_from=resume_path, dist=dist,
                          log=log)
    return result.exit_code


def _quiet(message: str) -> None:
    """Notes of ranks other than 0: rank 0 says the same."""


# ---- evaluate -------------------------------------------------------------------------------
def _add_model_data_args(p: argparse.ArgumentParser, out_help: str) -> None:
    p.add_argument("--model", required=True, type=Path, help="a model file (.cvmodel)")
    p.add_argument("--patchset", type=Path, help="a labelled patch set (default: the run's "
                   "validation cells, from split.npz beside the model)")
    p.add_argument("--out", type=Path, help=out_help)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--tta", action="store_true", help="test-time augmentation: the mean "
                   "probabilities over the 8 orientations (rotations and mirrors) of each patch")


def _add_evaluate_args(p: argparse.ArgumentParser) -> None:
    _add_model_data_args(p, "folder for evaluation.json/CSV (default: the model's folder)")
    p.add_argument("--prefix", default="evaluation", help="file name prefix")


def _fail(exc: BaseException) -> int:
    from trainer.formats.errors import classify_exception

    kind, message = classify_exception(exc)
    sys.stderr.write(f"error ({kind.value}): {message}\n")
    emit_error_event(kind, message)
    return 1


@command("evaluate", "accuracy, macro-F1, per-class metrics and confusion matrix of a model",
         _add_evaluate_args)
def cmd_evaluate(args: argparse.Namespace) -> int:
    from trainer.evaluate import evaluate_model, format_metrics

    try:
        metrics, classes, paths = evaluate_model(
            args.model, args.patchset, device=args.device, batch_size=args.batch_size,
            out_dir=args.out, prefix=args.prefix, tta=args.tta)
    except Exception as exc:
        return _fail(exc)
    print(format_metrics(metrics, classes))
    print(f"\nwritten: {', '.join(str(p) for p in paths.values())}")
    return 0


# ---- robustness -----------------------------------------------------------------------------
def _sigmas(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError("sigmas must be positive numbers")
    return values


def _add_robustness_args(p: argparse.ArgumentParser) -> None:
    _add_model_data_args(p, "folder for robustness.json/.csv/.md (default: the model's folder)")
    p.add_argument("--sigmas", type=_sigmas, default=None,
                   help="comma-separated blur sigmas (default 0.1,0.2,0.4,0.8,1.6)")


@command("robustness", "blur robustness: macro-F1 under Gaussian blur, pre- and post-resize",
         _add_robustness_args)
def cmd_robustness(args: argparse.Namespace) -> int:
    from trainer.evaluate import select_eval_data
    from trainer.formats.blur import SIGMAS
    from trainer.predict import Predictor
    from trainer.robustness import blur_robustness

    try:
        predictor = Predictor.load(args.model, device=args.device)
        data = select_eval_data(args.model, predictor.classes, args.patchset)
        report = blur_robustness(predictor, data.patches, data.y,
                                 source_crops=data.source_crops,
                                 sigmas=args.sigmas or SIGMAS, batch_size=args.batch_size,
                                 tta=args.tta)
        paths = report.write(args.out or Path(args.model).parent)
    except Exception as exc:
        return _fail(exc)
    print(f"{data.description}: {report.n} cells\n")
    print(report.format_table())
    print(f"\nwritten: {', '.join(str(p) for p in paths.values())}")
    return 0


# ---- benchmark ------------------------------------------------------------------------------
def _add_benchmark_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a model name or a model file (.cvmodel)")
    p.add_argument("--num-classes", type=int, default=16, help="for a model name (default 16)")
    p.add_argument("--device", default="auto")
    p.add_argument("--runs", type=int, default=400, help="batch-1 runs (default 400)")
    p.add_argument("--large-batch", type=int, default=None,
                   help="throughput batch size (default 4096 on CUDA, 256 elsewhere)")
    p.add_argument("--train", action="store_true", help="also time the training step")
    p.add_argument("--train-batch-size", type=int, default=512)
    p.add_argument("--variant", default=None,
                   help="training-step variant (default: compile+cuda-graph on CUDA, else eager)")
    p.add_argument("--json", action="store_true", help="print the results as JSON only")


@command("benchmark", "inference cost (batch-1 latency, size, throughput) and training speed",
         _add_benchmark_args)
def cmd_benchmark(args: argparse.Namespace) -> int:
    import torch

    from trainer.engine.bench import bench_train_step, inference_cost
    from trainer.engine.device import select_device

    try:
        device = select_device(args.device)
        if args.model.endswith(".cvmodel") or Path(args.model).is_file():
            from trainer.engine.modelfile import build_model, load_model_file

            mf = load_model_file(args.model)
            model, name, model_args = build_model(mf, device), mf.arch, mf.meta.get(
                "arch_kwargs", {})
            k = len(mf.classes)
        else:
            from trainer.models import create_model

            name, model_args, k = args.model, {}, args.num_classes
            torch.manual_seed(0)
            model = create_model(name, k)
        large = args.large_batch or (4096 if device.type == "cuda" else 256)
        results = {"inference": inference_cost(model, device, runs=args.runs, large_batch=large)}
        if args.train:
            variant = args.variant or ("compile+cuda-graph" if device.type == "cuda" else "eager")
            results["train"] = bench_train_step(name, device, args.train_batch_size, variant,
                                                num_classes=k, model_args=model_args)
    except Exception as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    inf = results["inference"]
    print(f"{name} on {device}: {inf['params_m']:.2f} M parameters, {inf['size_mb']:.2f} MB")
    print(f"batch-1 latency (mean of {args.runs}): eager {inf['b1_eager_ms']:.3f} ms"
          + (f", CUDA graph (float32) {inf['b1_graph_ms']:.3f} ms" if "b1_graph_ms" in inf
             else ""))
    print(f"throughput at batch {inf['large_batch']}: "
          f"{inf['large_batch_samples_per_s']:,.0f} samples/s")
    if "train" in results:
        t = results["train"]
        print(f"training step ({t['variant']}, batch {t['batch_size']}): "
              f"{t['samples_per_s']:,.0f} samples/s ({t['step_ms']:.2f} ms/step)")
    return 0


# ---- predict --------------------------------------------------------------------------------
def _add_predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="a model file (.cvmodel)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--patchset", type=Path, help="a patch set folder")
    src.add_argument("--points", type=Path, help="a points CSV (image,x,y[,...])")
    p.add_argument("--images", type=Path, help="with --points: the folder of the images")
    p.add_argument("--out", type=Path, required=True, help="the CSV of probabilities to write")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--blur-sigma", type=float, default=0.0)
    p.add_argument("--blur-mode", choices=["post", "pre"], default="post")
    p.add_argument("--embeddings", type=Path, help="also write the embeddings (.npy)")
    p.add_argument("--tta", action="store_true", help="test-time augmentation: the mean "
                   "probabilities over the 8 orientations (rotations and mirrors) of each patch")


@command("predict", "class probabilities of a patch set or points CSV, as CSV",
         _add_predict_args)
def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from trainer.engine.points import points_patches
    from trainer.predict import Predictor

    try:
        predictor = Predictor.load(args.model, device=args.device)
        if args.patchset is not None:
            from trainer.formats.patchset import load_patchset

            ps = load_patchset(args.patchset)
            patches, crops = ps.patches, ps.source_crops
            rows = [{"cell_id": c, "source": s, "x": float(xy[0]), "y": float(xy[1]),
                     "label": ps.classes[lab] if lab >= 0 else ""}
                    for c, s, xy, lab in zip(ps.cell_ids, ps.sources, ps.xy, ps.labels,
                                             strict=True)]
        else:
            if args.images is None:
                raise ValueError("--points needs --images (the folder of the images)")
            patches, crops, rows = points_patches(
                args.points, args.images, predictor.fov_px,
                keep_source_crops=args.blur_mode == "pre" and args.blur_sigma > 0)
        result = predictor.predict(np.asarray(patches), batch_size=args.batch_size,
                                   blur_sigma=args.blur_sigma, blur_mode=args.blur_mode,
                                   source_crops=crops,
                                   return_embeddings=args.embeddings is not None,
                                   tta=args.tta)
        write_predictions(args.out, rows, result)
        if args.embeddings is not None:
            assert result.embeddings is not None  # asked for with return_embeddings
            np.save(args.embeddings, result.embeddings)
    except Exception as exc:
        return _fail(exc)
    print(f"{len(rows)} cells -> {args.out}")
    return 0


def write_predictions(path: Path, rows: list[dict], result) -> None:
    import csv

    classes = result.classes
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["cell_id", "source", "x", "y", "label", "predicted", "confidence",
                    *[f"p_{c}" for c in classes]])
        for row, p, k in zip(rows, result.probs, result.predicted, strict=True):
            w.writerow([row["cell_id"], row["source"], repr(row["x"]), repr(row["y"]),
                        row["label"], classes[k], f"{p[k]:.6f}", *(f"{v:.6f}" for v in p)])
    tmp.replace(path)


# ---- ensemble -------------------------------------------------------------------------------
def _add_ensemble_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("members", nargs="+", help="run folders (their best model) or model files")
    p.add_argument("--out", type=Path, required=True, help="the ensemble's model file to write")


@command("ensemble", "one model file averaging the class probabilities of several models",
         _add_ensemble_args)
def cmd_ensemble(args: argparse.Namespace) -> int:
    from trainer.engine.ensemble import make_ensemble

    try:
        path = make_ensemble(args.members, args.out)
    except Exception as exc:
        return _fail(exc)
    print(f"{len(args.members)} members -> {path}")
    return 0
