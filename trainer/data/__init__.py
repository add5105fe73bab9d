"""Everything between a labelled patch set and the tensors a model trains on.

- ``build``: patch sets from a points CSV and its images (``build_from_points_csv``);
- ``augment`` (torch): the study's 9.6x augmentation ops;
- ``whiten``: the training mean image and its subtraction;
- ``loader``: batches gathered, augmented and whitened on the training device
  (``PatchBatches``);
- ``commands``: the CLI commands ``sample`` and ``build-patchset``.

The torch-free parts the desktop app shares live in ``trainer.formats``: the patch-set format
(``patchset``), FlagLimit sampling and its report (``sampling``) and the augmentation plan
(``augment_plan``).

Import the submodules directly; this package imports nothing (torch stays unloaded until a
module that needs it is imported).
"""
