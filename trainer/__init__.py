"""The headless PyTorch trainer: patch sets, sampling, augmentation, models, training,
evaluation, prediction and its command line. Never imports Qt or ``cellviewer``.

Importing ``trainer`` is cheap: torch is imported by the submodules that need it.
"""

__version__ = "0.1.0"
