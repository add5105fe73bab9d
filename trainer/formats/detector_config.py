"""The configuration of one detector training run (``python -m trainer train-detector``).

Standard library only, like :mod:`trainer.formats.config`: the app can build one, write it as
JSON and start ``python -m trainer train-detector --config run.json``; the trainer writes the
resolved configuration to ``config.json`` in the run folder and into every model file, so a run
can be repeated or resumed from either.

Training data is either a points table (``points``: any table ``trainer.formats.tables`` reads
with ``image, x, y``; ``images``: the folder its image names are relative to; ``image_list``:
the images whose every cell is marked, default all of the table's) or a regions file
(``regions``: JSON, see ``trainer.detect.data.read_regions``: fully annotated rectangles or
polygons with the cell centres inside them), or both.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.formats.config import ConfigError

DETECTOR_CONFIG_VERSION = 1
#: working pixels per cell diameter the automatic downsampling aims at (at least this many)
WORK_DIAMETER_PX = 10.0


class DetectorConfigError(ConfigError):
    """A detector run configuration is malformed; the message names the file and the field
    (reported as kind ``bad-config``, like a classifier run's)."""


@dataclass
class DetectorRunConfig:
    out_dir: str  # the run folder (config.json, events.jsonl, metrics.csv, split.json, models)
    points: str | None = None  # a points table: image, x, y (a class column is ignored)
    images: str | None = None  # the folder the table's image names are relative to
    image_list: list[str] | None = None  # the fully annotated images (default: all)
    regions: str | None = None  # a JSON file of fully annotated regions
    diameter_px: float = 16.0  # the cells' typical diameter in full-resolution pixels
    downsample: int | None = None  # working resolution = 1/downsample; None: from the diameter
    width: int = 16  # channels of the first level (doubled per level)
    depth: int = 2  # downsampling levels of the U-Net
    epochs: int = 20
    steps_per_epoch: int = 50
    batch_size: int = 8
    crop_px: int = 128  # training crops, in working pixels (a multiple of 2**depth)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    augment: bool = True  # the 8 rotations/flips and a mild brightness/contrast jitter
    # with augment: HED stain jitter of this strength (trainer.data.stain_jitter; 0: none,
    # 0.05: Tellez's "light" setting), for stain differences between slides
    stain_jitter: float = 0.0
    # Partial labels (e.g. CRC: about 75 % of the nuclei labelled): pixels farther than
    # ignore_beyond diameters from every label are ignored by the loss instead of being
    # called background (see trainer.detect.data).
    partial_labels: bool = False
    ignore_beyond: float = 1.0
    # with partial labels: what lies far from every label is still background where its
    # haematoxylin is below that of 95 % of the image's labelled nuclei (red cells, stroma,
    # lumen), and ignored only where it could be an unlabelled nucleus
    unstained_is_background: bool = False
    val_fraction: float = 0.2  # images (or regions) kept aside to choose the threshold
    match_radius_px: float | None = None  # validation matching radius (None: 0.3 diameters)
    device: str = "auto"
    seed: int = 42
    heartbeat_s: float = 1.0
    num_threads: int | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["config_version"] = DETECTOR_CONFIG_VERSION
        return d

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "detector configuration"
                  ) -> DetectorRunConfig:
        if not isinstance(data, dict):
            raise DetectorConfigError(f"{where}: expected a JSON object, got "
                                      f"{type(data).__name__}")
        data = dict(data)
        version = data.pop("config_version", DETECTOR_CONFIG_VERSION)
        if not isinstance(version, int) or version > DETECTOR_CONFIG_VERSION:
            raise DetectorConfigError(f"{where}: config_version {version!r} is newer than "
                                      "this trainer")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise DetectorConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
        if "out_dir" not in data:
            raise DetectorConfigError(f"{where}: missing field out_dir")
        cfg = cls(**data)
        problems = cfg.problems()
        if problems:
            raise DetectorConfigError(f"{where}: " + "; ".join(problems))
        return cfg

    @classmethod
    def load(cls, path: str | Path) -> DetectorRunConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise DetectorConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
        except json.JSONDecodeError as exc:
            raise DetectorConfigError(f"{path}: not valid JSON (line {exc.lineno}: "
                                      f"{exc.msg})") from exc
        return cls.from_dict(data, str(path))

    def replace(self, **changes: Any) -> DetectorRunConfig:
        return dataclasses.replace(self, **changes)

    @property
    def work_downsample(self) -> int:
        """The working resolution's reduction factor: the given one, else the largest whole
        factor that leaves at least ``WORK_DIAMETER_PX`` pixels per diameter (1 for nuclei at
        20x, 4 for 45-px red cells)."""
        if self.downsample is not None:
            return self.downsample
        return max(1, int(self.diameter_px // WORK_DIAMETER_PX))

    def problems(self) -> list[str]:
        out: list[str] = []

        def check(name: str, ok: bool, what: str) -> None:
            if not ok:
                out.append(f"{name} must be {what}, got {getattr(self, name)!r}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        def path_or_none(v: Any) -> bool:
            return v is None or (isinstance(v, str) and bool(v))

        check("out_dir", isinstance(self.out_dir, str) and bool(self.out_dir), "a path")
        for name in ("points", "images", "regions"):
            check(name, path_or_none(getattr(self, name)), "a path or null")
        if self.points is None and self.regions is None:
            out.append("training data needed: points (a points table) or regions (a regions "
                       "file)")
        check("image_list", self.image_list is None or (
            isinstance(self.image_list, list) and all(isinstance(n, str) for n in
                                                       self.image_list)),
              "a list of image names or null")
        check("diameter_px", is_num(self.diameter_px) and 2 <= self.diameter_px <= 500,
              "a number within 2..500")
        check("downsample", self.downsample is None or (is_int(self.downsample)
                                                         and 1 <= self.downsample <= 32),
              "an integer within 1..32 or null")
        check("width", is_int(self.width) and 4 <= self.width <= 64, "an integer within 4..64")
        check("depth", is_int(self.depth) and 1 <= self.depth <= 4, "an integer within 1..4")
        for name in ("epochs", "steps_per_epoch", "batch_size"):
            check(name, is_int(getattr(self, name)) and getattr(self, name) > 0,
                  "a positive integer")
        check("crop_px", is_int(self.crop_px) and 16 <= self.crop_px <= 2048
              and is_int(self.depth) and self.crop_px % (2 ** max(self.depth, 0)) == 0,
              "an integer within 16..2048 and a multiple of 2**depth")
        check("lr", is_num(self.lr) and self.lr > 0, "a positive number")
        check("weight_decay", is_num(self.weight_decay) and self.weight_decay >= 0,
              "a number >= 0")
        check("augment", isinstance(self.augment, bool), "true or false")
        check("stain_jitter", is_num(self.stain_jitter) and 0 <= self.stain_jitter <= 0.5,
              "a number within 0..0.5")
        check("partial_labels", isinstance(self.partial_labels, bool), "true or false")
        check("unstained_is_background", isinstance(self.unstained_is_background, bool),
              "true or false")
        check("ignore_beyond", is_num(self.ignore_beyond) and self.ignore_beyond > 0,
              "a positive number (diameters)")
        check("val_fraction", is_num(self.val_fraction) and 0 <= self.val_fraction < 1,
              "within 0..1 (0: validate on the training data)")
        check("match_radius_px", self.match_radius_px is None or (
            is_num(self.match_radius_px) and self.match_radius_px > 0),
            "a positive number or null")
        check("device", isinstance(self.device, str) and (
            self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")),
            '"auto", "cpu", "cuda", "cuda:N" or "mps"')
        check("seed", is_int(self.seed) and self.seed >= 0, "an integer >= 0")
        check("heartbeat_s", is_num(self.heartbeat_s) and self.heartbeat_s > 0,
              "a positive number")
        check("num_threads", self.num_threads is None or (is_int(self.num_threads)
                                                           and self.num_threads > 0),
              "a positive integer or null")
        return out

    def validate(self) -> DetectorRunConfig:
        problems = self.problems()
        if problems:
            raise DetectorConfigError("detector configuration: " + "; ".join(problems))
        return self
