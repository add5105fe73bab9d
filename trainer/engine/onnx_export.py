"""CellViewer models as ONNX graphs, so other tools (QuPath, onnxruntime, OpenCV's DNN module,
OpenVINO) can run them, and so the predictor can run them on ONNX Runtime on the CPU.

The graph contains the model's whole preprocessing, so a caller only hands it pixels:

- input ``patches``, layout ``"nhwc-uint8"`` (the default): (N, 40, 40, 3) uint8 RGB, the
  patches exactly as the app crops them (``numpy.asarray(PIL.Image)`` order). Layout
  ``"nchw-float"``: (N, 3, 40, 40) float32 RGB in [0, 1], what OpenCV's
  ``blobFromImage(img, 1/255, swapRB=True)`` gives (QuPath's OpenCV DNN route);
- inside: uint8 -> float / 255 -> minus the training mean image when the model's input mode is
  "whitened" (the mean image is a constant of the graph: whitening is *folded in*, nothing for
  a caller to subtract) -> the network;
- outputs ``probs`` (N, K) float32, the softmax, and ``logits`` (N, K) float32;
- the batch axis is dynamic;
- ``metadata_props`` (all strings; JSON where structured) record what the graph is:
  ``cellviewer.classes`` (JSON list, the output order), ``cellviewer.fov_px``,
  ``cellviewer.patch_size``, ``cellviewer.input_layout``, ``cellviewer.input_scaling``,
  ``cellviewer.whitening`` ("folded" or "none"), ``cellviewer.arch``,
  ``cellviewer.model_sha256`` (the SHA-256 of the ``.cvmodel`` file: the model's identity in
  CellViewer), ``cellviewer.model_name``, ``cellviewer.format_version``.

The exporter is torch's TorchScript-based one (``dynamo=False``): it exports every registered
family in one to seven seconds on two cores and needs only the ``onnx`` package; the
``torch.export`` one (``dynamo=True``) needs ``onnxscript`` too and took 12-17 s per model, so
it is only the fallback for a model the first cannot trace (and for a torch without the old
exporter). Every export can be checked against the PyTorch model with onnxruntime
(:func:`check_against_torch`); the command line always does.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from trainer.formats.errors import TrainerError

if TYPE_CHECKING:
    from trainer.engine.modelfile import ModelFile

LAYOUTS = ("nhwc-uint8", "nchw-float")
OPSET = 17
FORMAT_VERSION = "1"
# Architectures (registry names) whose graphs cannot be exported, and why: refused by name
# before any tracing. Every registered family exports today (tests/trainer/engine/
# test_onnx_export.py checks each one); a family that stops exporting is listed here.
UNEXPORTABLE: dict[str, str] = {}


class OnnxExportError(TrainerError):
    """A model could not be exported to ONNX (or its export disagrees with PyTorch)."""


class PreprocessedClassifier(nn.Module):
    """The model with its input handling and softmax: what the ONNX graph computes."""

    mean: torch.Tensor | None

    def __init__(self, model: nn.Module, mean_image: torch.Tensor | None,
                 layout: str = "nhwc-uint8") -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"ONNX input layout must be one of {LAYOUTS}, not {layout!r}")
        self.model = model
        self.layout = layout
        if mean_image is not None:
            self.register_buffer("mean", mean_image.detach().float().reshape(1, 3, 40, 40))
        else:
            self.mean = None

    def forward(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.layout == "nhwc-uint8":
            x = patches.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        else:
            x = patches
        if self.mean is not None:
            x = x - self.mean
        logits = self.model(x).float()
        return torch.softmax(logits, dim=1), logits


def example_input(layout: str, n: int = 2, seed: int = 0) -> torch.Tensor:
    """Random patches in ``layout``: the tracing example and the check's probe batch."""
    g = torch.Generator().manual_seed(seed)
    u8 = torch.randint(0, 256, (n, 40, 40, 3), dtype=torch.uint8, generator=g)
    if layout == "nhwc-uint8":
        return u8
    return u8.permute(0, 3, 1, 2).float().div(255.0).contiguous()


def _export_legacy(wrapped: nn.Module, example: torch.Tensor, opset: int) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():  # its deprecation and tracer notes are not the user's
        warnings.simplefilter("ignore")
        torch.onnx.export(  # it writes to a file object too (its hint says paths only)
            wrapped, (example,), cast(Any, buf), dynamo=False, opset_version=opset,
            input_names=["patches"], output_names=["probs", "logits"],
            dynamic_axes={"patches": {0: "n"}, "probs": {0: "n"}, "logits": {0: "n"}})
    return buf.getvalue()


def _export_dynamo(wrapped: nn.Module, example: torch.Tensor, opset: int) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapped, (example,), dynamo=True, opset_version=max(opset, 18),
            input_names=["patches"], output_names=["probs", "logits"],
            dynamic_shapes=({0: torch.export.Dim("n", min=1)},), verbose=False)
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    return program.model_proto.SerializeToString()


def export_graph(model: nn.Module, mean_image: torch.Tensor | None, *,
                 layout: str = "nhwc-uint8", arch: str = "model",
                 opset: int = OPSET) -> bytes:
    """The serialised ONNX graph (bytes, no metadata yet) of ``model`` (on the CPU, eval mode)
    with its preprocessing; ``mean_image`` None: no whitening (input mode "unit").

    Raises :class:`OnnxExportError` naming ``arch`` when neither exporter manages."""
    if arch in UNEXPORTABLE:
        raise OnnxExportError(f"model architecture {arch!r} cannot be exported to ONNX: "
                              f"{UNEXPORTABLE[arch]}")
    try:
        import onnx  # noqa: F401  (the exporter needs it; a clear message when it is missing)
    except ImportError as exc:
        raise OnnxExportError("exporting to ONNX needs the 'onnx' package "
                              "(pip install onnx)") from exc
    wrapped = PreprocessedClassifier(model, mean_image, layout).eval()
    example = example_input(layout)
    errors = []
    with torch.no_grad():
        for exporter in (_export_legacy, _export_dynamo):
            try:
                return exporter(wrapped, example, opset)
            except Exception as exc:  # each exporter fails in its own ways
                errors.append(f"{exporter.__name__[8:]}: {type(exc).__name__}: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
    raise OnnxExportError(f"model architecture {arch!r} could not be exported to ONNX "
                          f"({'; '.join(errors)[:600]})")


def with_metadata(graph: bytes, props: dict[str, str], doc: str = "") -> bytes:
    """``graph`` with ``props`` set as its ``metadata_props`` (replacing same-named ones)."""
    import onnx

    proto = onnx.load_model_from_string(graph)
    keep = [p for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    proto.producer_name = "CellViewer trainer"
    if doc:
        proto.doc_string = doc
    return proto.SerializeToString()


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 (hex) of a file's bytes: a model file's identity."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def metadata_for(mf: ModelFile, layout: str, sha256: str | None = None) -> dict[str, str]:
    """The ``metadata_props`` of the graph of model file ``mf`` (see the module docstring)."""
    scaling = ("uint8 RGB, divided by 255 in the graph" if layout == "nhwc-uint8"
               else "float32 RGB in [0, 1] (pixel / 255)")
    whitened = mf.input_mode == "whitened"
    props = {
        "cellviewer.format_version": FORMAT_VERSION,
        "cellviewer.classes": json.dumps(mf.classes),
        "cellviewer.num_classes": str(len(mf.classes)),
        "cellviewer.fov_px": repr(float(mf.meta.get("fov_px", 40))),
        "cellviewer.patch_size": str(int(mf.meta.get("patch_size", 40))),
        "cellviewer.input_layout": layout,
        "cellviewer.input_shape": "[N, 40, 40, 3]" if layout == "nhwc-uint8"
        else "[N, 3, 40, 40]",
        "cellviewer.input_channels": "RGB",
        "cellviewer.input_scaling": scaling,
        "cellviewer.whitening": "folded" if whitened else "none",
        "cellviewer.input_mode": mf.input_mode,
        "cellviewer.outputs": "probs (softmax), logits",
        "cellviewer.arch": mf.arch,
    }
    if sha256:
        props["cellviewer.model_sha256"] = sha256
    if mf.path is not None:
        props["cellviewer.model_name"] = Path(mf.path).stem
    if mf.meta.get("trainer_version"):
        props["cellviewer.trainer_version"] = str(mf.meta["trainer_version"])
    return props


def check_against_torch(graph: bytes, model: nn.Module, mean_image: torch.Tensor | None,
                        layout: str = "nhwc-uint8", n: int = 16, seed: int = 1) -> float:
    """The largest absolute difference of probabilities between onnxruntime running ``graph``
    and the PyTorch model, on ``n`` random patches (a batch size other than the tracing one,
    so the dynamic batch axis is exercised)."""
    import onnxruntime as ort

    wrapped = PreprocessedClassifier(model, mean_image, layout).eval()
    x = example_input(layout, n, seed)
    with torch.no_grad():
        ref = wrapped(x)[0].numpy()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
    got = session.run(["probs"], {"patches": x.numpy()})[0]
    return float(np.abs(np.asarray(got) - ref).max())


@dataclass
class ExportReport:
    path: Path
    arch: str
    classes: list[str]
    max_abs_diff: float | None  # vs PyTorch, None when not checked
    metadata: dict[str, str]


def export_model_file(model_path: str | os.PathLike, out: str | os.PathLike, *,
                      layout: str = "nhwc-uint8", check: bool = True,
                      tolerance: float = 1e-4) -> ExportReport:
    """Export the ``.cvmodel`` at ``model_path`` to the ONNX file ``out`` (written atomically),
    checked against PyTorch with onnxruntime (``check``): a difference of probabilities over
    ``tolerance`` is an :class:`OnnxExportError` and nothing is written."""
    from trainer.engine.modelfile import build_model, load_model_file

    mf = load_model_file(model_path)
    if mf.arch in UNEXPORTABLE:
        raise OnnxExportError(f"{model_path}: model architecture {mf.arch!r} cannot be "
                              f"exported to ONNX: {UNEXPORTABLE[mf.arch]}")
    model = build_model(mf, "cpu")
    mean = mf.mean_image if mf.input_mode == "whitened" else None
    graph = export_graph(model, mean, layout=layout, arch=mf.arch)
    diff = None
    if check:
        try:
            diff = check_against_torch(graph, model, mean, layout)
        except ImportError as exc:
            raise OnnxExportError("checking the export needs onnxruntime (pip install "
                                  "onnxruntime), or pass --no-check") from exc
        if not diff <= tolerance:
            raise OnnxExportError(
                f"{model_path}: the ONNX export of {mf.arch!r} differs from the PyTorch model "
                f"by {diff:.2e} in probability (over {tolerance:.0e}); nothing was written")
    props = metadata_for(mf, layout, file_sha256(model_path))
    doc = (f"CellViewer {mf.arch} cell classifier: {len(mf.classes)} classes "
           f"({', '.join(mf.classes)}). Input 'patches' {props['cellviewer.input_shape']} "
           f"({props['cellviewer.input_scaling']}); outputs 'probs' and 'logits'.")
    data = with_metadata(graph, props, doc)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return ExportReport(out, mf.arch, mf.classes, diff, props)


def read_metadata(path_or_bytes: str | os.PathLike | bytes) -> dict[str, Any]:
    """The ``metadata_props`` of an ONNX file (or graph bytes), with ``cellviewer.classes``
    decoded: for tests and tools."""
    import onnxruntime as ort

    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes)
    session = ort.InferenceSession(data if isinstance(data, bytes) else str(data),
                                   providers=["CPUExecutionProvider"])
    props: dict[str, Any] = dict(session.get_modelmeta().custom_metadata_map)
    if "cellviewer.classes" in props:
        props["cellviewer.classes"] = json.loads(props["cellviewer.classes"])
    return props
