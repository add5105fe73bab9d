"""Everything the desktop app may import from the trainer, torch-free by contract.

The modules here use the standard library, NumPy and PIL only (import-linter contracts in
``pyproject.toml`` forbid torch, timm, torchvision and safetensors, lazy imports included), so
the app shares the trainer's formats and plain data without paying for torch at start-up. Each
concept has its one module here, which the trainer imports too:

- ``catalog``: the models (parameters, size, the study's training defaults, weights stem);
- ``config``: the configuration of a training run (``RunConfig``, ``ConfigError``);
- ``protocol``: the JSON-lines progress protocol of a training process (events, ``ErrorKind``);
- ``errors``: the trainer's errors and their protocol kinds (``ModelFileError``...);
- ``model_header``: a ``.cvmodel`` file's header (architecture, classes) without its weights;
- ``weights_files``: where foundation-model weights files are looked for;
- ``patchset``: the on-disk patch-set format and the cropping rule;
- ``sampling``: FlagLimit sampling and the sampling report;
- ``augment_plan``: the study's augmentation plan (the 9.6x count);
- ``blur``: the study's Gaussian blur (robustness and the app's blur preview).

Import the modules directly (``from trainer.formats.protocol import parse_line``); this
package imports nothing.
"""
