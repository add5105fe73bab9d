"""The Qt-free core: image sources, the project store, import/export and cropping.

Nothing here imports PySide6 (checked by the import-linter contract in pyproject.toml), so the
core can be used from scripts, notebooks and the trainer's tools, and tested without a display.
"""
