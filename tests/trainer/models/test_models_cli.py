"""`python -m trainer models`: every model with its parameters, size and defaults."""

import json
import subprocess
import sys
from pathlib import Path

import torch

from trainer.cli import main
from trainer.models import count_parameters, create_model, list_models

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[3]


def test_models_json_matches_the_models(capsys):
    assert main(["models", "--num-classes", "4", "--kind", "scratch", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list_models("scratch")
    for r in rows:
        n = count_parameters(create_model(r["name"], 4))
        assert r["params"] == n and abs(r["size_mb"] - n * 4 / 1e6) < 1e-9
    vit = next(r for r in rows if r["name"] == "custom_vit")
    assert vit["defaults"]["epochs"] == 80 and vit["study_params_m"] == 1.89
    assert vit["params"] == 1_893_776 - 12 * 160 - 12  # 4 classes instead of 16


def test_models_table_in_a_real_process():
    out = subprocess.run([sys.executable, "-m", "trainer", "models", "--num-classes", "16"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for name in list_models():
        assert any(line.startswith(name + " ") for line in lines), name
    vit = next(line for line in lines if line.startswith("custom_vit "))
    assert "1.89 M" in vit and "7.6" in vit  # 1,893,776 float32 parameters = 7.6 MB
    uni = next(line for line in lines if line.startswith("uni "))
    assert "303.37 M" in uni and "1213.5" in uni and "lp: 0.02 M trainable" in uni
    assert any("ft_last: 12.62 M trainable" in line for line in lines)
