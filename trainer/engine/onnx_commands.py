"""The ``export-onnx`` command of the trainer's CLI: a model file as an ONNX graph for other
tools (see :mod:`trainer.engine.onnx_export` and docs/onnx.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer.cli import command


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="the model file (.cvmodel)")
    p.add_argument("out", type=Path, help="the ONNX file to write (.onnx)")
    p.add_argument("--input", dest="layout", choices=("nhwc-uint8", "nchw-float"),
                   default="nhwc-uint8",
                   help="the graph's input: (N, 40, 40, 3) uint8 RGB patches (default), or "
                        "(N, 3, 40, 40) float32 RGB in [0, 1] (OpenCV blobFromImage with "
                        "scale 1/255); whitening is inside the graph either way")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip the onnxruntime check against the PyTorch model (1e-4)")


@command("export-onnx", "export a model file to ONNX (preprocessing and softmax inside)", _args)
def cmd_export_onnx(args: argparse.Namespace) -> int:
    from trainer.engine.onnx_export import export_model_file
    from trainer.formats.errors import classify_exception

    try:
        report = export_model_file(args.model, args.out, layout=args.layout, check=args.check)
    except Exception as exc:
        kind, message = classify_exception(exc)
        sys.stderr.write(f"error ({kind.value}): {message}\n")
        return 1
    checked = ("not checked" if report.max_abs_diff is None
               else f"max |p_onnx - p_torch| = {report.max_abs_diff:.1e}")
    print(f"{args.model} ({report.arch}, {len(report.classes)} classes) -> {report.path} "
          f"[input {args.layout}; {checked}]")
    return 0
