"""Where foundation-model weights files are looked for in a weights folder.

Standard library only, like the rest of ``trainer.formats``: the desktop app imports it to offer
a foundation model only when its weights file is there, without importing torch.
``trainer.models.weights`` (which loads the files) uses the same rule.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR_ENV = "CELLVIEWER_WEIGHTS_DIR"
SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
# Hugging Face layouts, for a user who copies a whole model repository into the folder.
HF_FILES = ("model.safetensors", "pytorch_model.bin")


def expected_files(stem: str) -> list[str]:
    """File names (relative to the weights folder) looked for backbone ``stem``, in order."""
    return [stem + s for s in SUFFIXES] + [f"{stem}/{f}" for f in HF_FILES]


def find_weights_file(stem: str, folder: Path | None) -> Path | None:
    """The first expected weights file of ``stem`` that exists in ``folder``, else None."""
    if folder is None or not Path(folder).is_dir():
        return None
    for rel in expected_files(stem):
        if (Path(folder) / rel).is_file():
            return Path(folder) / rel
    return None
