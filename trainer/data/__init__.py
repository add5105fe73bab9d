"""Everything between a labelled patch set and the tensors a model trains on.

- ``patchset``: the on-disk patch-set format (``PatchSet``, ``load_patchset``, cropping rule);
- ``build``: patch sets from a points CSV and its images (``build_from_points_csv``);
- ``sampling``: FlagLimit sampling (``flaglimit_split``) and the sampling report;
- ``augment_plan`` (NumPy) and ``augment`` (torch): the study's 9.6x augmentation;
- ``whiten``: the training mean image and its subtraction;
- ``loader``: batches gathered, augmented and whitened on the training device
  (``PatchBatches``);
- ``commands``: the CLI commands ``sample`` and ``build-patchset``.

Import the submodules directly; this package imports nothing (torch stays unloaded until a
module that needs it is imported).
"""
