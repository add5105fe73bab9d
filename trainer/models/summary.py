"""A table of every registered model: parameters, float32 size and the study's defaults.

Models are built on the meta device (no memory, no weights), so even UNI's 303 M parameters are
counted in a fraction of a second and nothing is read from disk.
"""

from __future__ import annotations

from typing import Any

import torch

from trainer.models._registry import (
    count_parameters,
    create_model,
    list_models,
    model_spec,
    size_mb,
)


def model_rows(num_classes: int = 16, kind: str | None = None) -> list[dict[str, Any]]:
    """One dict per model: name, kind, family, input_mode, params, size_mb (float32),
    study_params_m, defaults (dict; for foundation models the LP defaults) and, for foundation
    models, mode_defaults and the trainable parameters per mode (trainable)."""
    rows = []
    for name in list_models(kind):
        spec = model_spec(name)
        row: dict[str, Any] = {
            "name": name, "kind": spec.kind, "family": spec.family,
            "input_mode": spec.input_mode, "study_params_m": spec.study_params_m,
            "defaults": spec.defaults.to_dict(), "summary": spec.summary,
        }
        with torch.device("meta"):
            if spec.kind == "foundation":
                trainable = {}
                for mode in spec.modes:
                    m = create_model(name, num_classes, mode=mode, pretrained=False)
                    trainable[mode] = count_parameters(m, trainable_only=True)
                row["trainable"] = trainable
                row["mode_defaults"] = {k: v.to_dict() for k, v in spec.mode_defaults.items()}
            else:
                m = create_model(name, num_classes)
        row["params"] = count_parameters(m)
        row["size_mb"] = size_mb(row["params"])
        row["num_features"] = int(m.num_features)
        rows.append(row)
    return rows


def format_rows(rows: list[dict[str, Any]], num_classes: int) -> str:
    """The table ``python -m trainer models`` prints."""
    head = (f"{'model':<16}{'kind':<11}{'params':>12}{'MB fp32':>9}{'study':>8}{'emb':>6}  "
            f"{'epochs':>6}{'lr':>8}{'wd':>6}{'batch':>6}  notes")
    lines = [f"Models at {num_classes} classes (study = the study's count at 16 classes, "
             "M parameters; emb = embedding size)", head, "-" * len(head)]
    for r in rows:
        study = f"{r['study_params_m']:.2f}" if r["study_params_m"] is not None else "-"
        modes = r.get("mode_defaults") or {None: r["defaults"]}
        for i, (mode, d) in enumerate(modes.items()):
            first = i == 0
            name = r["name"] if first else ""
            kind = r["kind"] if first else ""
            params = f"{r['params'] / 1e6:.2f} M" if first else ""
            mb = f"{r['size_mb']:.1f}" if first else ""
            st = study if first else ""
            emb = str(r["num_features"]) if first else ""
            note = ""
            if mode is not None:
                note = f"{mode}: {r['trainable'][mode] / 1e6:.2f} M trainable"
            elif d["warmup_epochs"]:
                note = f"warm-up {d['warmup_epochs']} epochs"
            lines.append(
                f"{name:<16}{kind:<11}{params:>12}{mb:>9}{st:>8}{emb:>6}  "
                f"{d['epochs']:>6}{d['lr']:>8.0e}{d['weight_decay']:>6g}{d['batch_size']:>6}  "
                f"{note}".rstrip())
    return "\n".join(lines)
