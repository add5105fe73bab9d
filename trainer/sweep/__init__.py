"""Sweeps: the grid of training runs (models x FlagLimits x seeds), each run measured (test
set, blur, cost), the results table, the report, and seed ensembles.

- :mod:`trainer.formats.sweep` the specification and the grid (torch-free)
- :mod:`trainer.formats.sweep_results` rows and summaries from run folders (torch-free)
- :mod:`trainer.sweep.run` one grid point: train, resume or skip, then measure
- :mod:`trainer.sweep.runner` the grid: in process, in N workers, or one shard of it
- :mod:`trainer.sweep.report` the HTML report with the study's tables and figures
- :mod:`trainer.sweep.commands` ``sweep``, ``sweep-worker``, ``sweep-merge``, ``report``
"""
