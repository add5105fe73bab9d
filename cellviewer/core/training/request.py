"""What launching a training run takes, from a filled-in :class:`~.form.TrainingForm`:

1. :meth:`TrainingRequest.create_run`: the run folder with its run.json (which images and
   classes, their label counts);
2. :class:`PatchSetJob`: the run's patch set written from the project (seconds to minutes:
   run it in a worker thread; it reports progress and can be cancelled);
3. :meth:`TrainingRequest.run_config`: the trainer's configuration for the run, saved as
   config.json for ``python -m trainer train --config``.

Qt-free: a script can do all three and start the trainer with ``runs.trainer_command`` (with the
request's ``processes``: torchrun, one process per GPU).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cellviewer.core.training import runs as runs_mod
from cellviewer.core.training.form import TrainingForm
from trainer.formats.config import RunConfig


class FormError(ValueError):
    """The form cannot start a run; the message says why (``TrainingForm.problem``)."""


class PatchSetCancelled(Exception):
    """The patch set was cancelled while it was being written."""


DEFAULT_RUN_NAME = "run"
VAL_PATCHSET = "val_patchset"  # the validation patch set of a run with a split column


@dataclass(frozen=True)
class TrainingRequest:
    """A training run as the form chose it: the data (which images, which classes) and the
    trainer's settings, everything but the run folder (made by :meth:`create_run`)."""

    project_path: Path
    name: str
    image_ids: list[int]
    image_names: list[str]
    classes: list[str]
    label_counts: dict[str, int]
    settings: dict = field(default_factory=dict)  # RunConfig fields but the paths and name
    #: a metadata column whose validation cells form the validation patch set (None: the
    #: trainer's random stratified split)
    split_column: str | None = None
    #: trainer processes (one per GPU under torchrun, DistributedDataParallel); 1: one process
    processes: int = 1

    @classmethod
    def from_form(cls, form: TrainingForm) -> TrainingRequest:
        """The request of a form that can start a run (else :class:`FormError`)."""
        problem = form.problem()
        if problem:
            raise FormError(problem)
        offered = form.offered()
        assert offered is not None  # problem() checks that a model is chosen
        foundation = offered.is_foundation
        device, processes = form.launch_plan()
        settings = {
            "model": offered.name, "flag_limit": form.flag_limit, "epochs": int(form.epochs),
            "batch_size": int(form.batch_size), "lr": float(form.lr),
            "weight_decay": float(form.weight_decay), "device": device,
            "seed": int(form.seed), "val_fraction": float(form.val_fraction),
            "mode": form.run_mode() if foundation else None,
            "weights": str(offered.weights) if foundation else None,
            "init_from": str(form.start_path) if form.start_path is not None else None,
        }
        rows = form.image_rows()
        return cls(
            project_path=form.project_path,
            name=form.run_name.strip() or DEFAULT_RUN_NAME,
            image_ids=form.selected_images(),
            image_names=[form.data.image_names[i] for i in rows],
            classes=form.selected_classes(), label_counts=form.label_counts(),
            settings=settings,
            split_column=form.split_column if form.split() is not None else None,
            processes=processes)

    def create_run(self) -> runs_mod.Run:
        """A new run folder of the project, named after the request (made unique)."""
        return runs_mod.RunRegistry(self.project_path).create(
            self.name, project=str(self.project_path), images=list(self.image_ids),
            image_names=list(self.image_names), classes=list(self.classes),
            label_counts=dict(self.label_counts), processes=int(self.processes))

    def run_config(self, run: runs_mod.Run) -> RunConfig:
        """The trainer's configuration for ``run`` (checked: a bad value raises
        ``trainer.formats.config.ConfigError``)."""
        val = str(self.val_patchset_path(run)) if self.split_column else None
        return RunConfig(patchset=str(run.patchset_path), out_dir=str(run.folder),
                         name=run.name, val_patchset=val, **self.settings).validate()

    @staticmethod
    def val_patchset_path(run: runs_mod.Run) -> Path:
        return run.folder / VAL_PATCHSET

    def patchset_job(self, run: runs_mod.Run) -> PatchSetJob:
        return PatchSetJob(self.project_path, run.patchset_path, list(self.image_ids),
                           list(self.classes), split_column=self.split_column,
                           val_folder=self.val_patchset_path(run))


class PatchSetJob:
    """Writes a run's patch set from the project. :meth:`run` blocks (call it in a worker
    thread; it opens its own connection to the project); :attr:`done` and :attr:`total` (images,
    the patch set is written image by image) say how far it is; :meth:`cancel` stops it at its
    next progress report."""

    def __init__(self, project_path: str | os.PathLike, out_folder: Path,
                 image_ids: list[int], class_names: list[str], *,
                 split_column: str | None = None, val_folder: Path | None = None) -> None:
        self.project_path = Path(project_path)
        self.out_folder = Path(out_folder)
        self.split_column = split_column  # with it: a training and a validation patch set
        self.val_folder = val_folder
        self.image_ids = image_ids
        self.class_names = class_names
        self.done = 0  # images written
        self.total = 0  # images to write (0 until the first report)
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = int(done), int(total)
        if self.cancelled:
            raise PatchSetCancelled("cancelled")

    def run(self) -> Path:
        """Write the patch set; returns its folder. Raises :class:`PatchSetCancelled` when
        cancelled, or the error that stopped it (an image that cannot be read names it)."""
        from cellviewer.core.store import ProjectStore
        from cellviewer.core.training.patchset import write_project_patchset

        store = ProjectStore.open(self.project_path)
        try:
            if self.split_column is None or self.val_folder is None:
                write_project_patchset(store, self.out_folder, image_ids=self.image_ids,
                                       class_names=self.class_names, progress=self._progress)
            else:
                from cellviewer.core.training.split import split_ids

                train, val = split_ids(store, self.image_ids, self.split_column)
                n = len(self.image_ids)
                write_project_patchset(store, self.out_folder, image_ids=self.image_ids,
                                       class_names=self.class_names, only_ids=train,
                                       progress=lambda d, _t: self._progress(d, 2 * n))
                write_project_patchset(store, self.val_folder, image_ids=self.image_ids,
                                       class_names=self.class_names, only_ids=val,
                                       progress=lambda d, _t: self._progress(n + d, 2 * n))
        finally:
            store.close()
        return self.out_folder
