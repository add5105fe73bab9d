"""The stdlib model-file header reader: it reads what the trainer writes (the same metadata as
the torch-based model-file reader) and refuses anything else with a message naming the file."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from trainer.engine import modelfile
from trainer.formats.errors import ModelFileError
from trainer.formats.model_header import FORMAT, read_model_header


def tiny_model_file(path: Path, classes: list[str]) -> Path:
    """A real (tiny) CNN's file: a model file's tensors must fit its architecture."""
    from trainer.models import create_model

    torch.manual_seed(0)
    args = {"channels": [4, 4, 8, 8]}
    model = create_model("cnn", len(classes), **args)
    return modelfile.save_model_file(
        path, state_dict=model.state_dict(), mean_image=torch.rand(3, 40, 40),
        meta={"arch": "cnn", "arch_kwargs": args, "classes": classes,
              "metrics": {"val_acc": 0.5}},
        optimizer_state=torch.optim.AdamW(model.parameters()).state_dict())


def safetensors_bytes(header: dict, payload: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + payload


def test_reads_the_metadata_the_trainer_writes(tmp_path: Path):
    path = tiny_model_file(tmp_path / "m.cvmodel", ["normal", "target cell", "teardrop"])
    meta = read_model_header(path)
    assert meta["arch"] == "cnn"
    assert meta["classes"] == ["normal", "target cell", "teardrop"]
    assert meta["num_classes"] == 3 and meta["metrics"] == {"val_acc": 0.5}
    assert meta == modelfile.load_model_file(path).meta  # the torch-based reader agrees


@pytest.mark.parametrize(("content", "cause"), [
    (b"", "too short to be a safetensors file"),
    (b"PNG\r\n\x1a\n" + bytes(100), "header length"),  # a picture: a huge "length"
    (struct.pack("<Q", 8) + b"not json", "header is not JSON"),
    (safetensors_bytes({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                       bytes(4)), "a safetensors file but not a CellViewer model"),
    (safetensors_bytes({"__metadata__": {"format": FORMAT, "format_version": "1",
                                         "meta": "{broken"}}), "damaged CellViewer model"),
    (safetensors_bytes({"__metadata__": {"format": FORMAT, "format_version": "1",
                                         "meta": json.dumps({"arch": "cnn"})}}),
     "no list of class names"),
    (safetensors_bytes({"__metadata__": {"format": FORMAT, "format_version": "99",
                                         "meta": json.dumps({"arch": "cnn", "classes": ["a"]})
                                         }}), "newer than this CellViewer"),
])
def test_refuses_what_is_not_a_model_file_naming_it(tmp_path: Path, content: bytes, cause: str):
    path = tmp_path / "not-a-model.cvmodel"
    path.write_bytes(content)
    with pytest.raises(ModelFileError) as info:
        read_model_header(path)
    assert str(info.value).startswith(f"{path}: ")
    assert cause in str(info.value)


def test_missing_file_and_folder(tmp_path: Path):
    with pytest.raises(ModelFileError, match="model file not found"):
        read_model_header(tmp_path / "gone.cvmodel")
    with pytest.raises(ModelFileError, match="not a file"):
        read_model_header(tmp_path)
