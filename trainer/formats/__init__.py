"""Everything the desktop app may import from the trainer, torch-free by contract.

The modules here use the standard library and numpy only (import-linter contracts in
``pyproject.toml`` forbid torch, timm, torchvision and safetensors), so the app reads the
trainer's formats and plain data without paying for torch at start-up:

- ``catalog``: the models (parameters, size, the study's training defaults, weights naming).
"""
