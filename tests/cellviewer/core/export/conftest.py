"""The export tests' project (export_study.py)."""

from export_study import study as study  # a fixture, re-exported
