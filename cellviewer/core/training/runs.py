"""Training runs of a project, on disk and Qt-free: where they live, what state they are in, how
to launch, repeat and resume them, and how a finished run's model joins the project.

Layout: next to the project file ``<folder>/<project>.cvproj`` sits ``<folder>/<project>.runs/``
with one folder per run::

    <project>.runs/<run name>/
        run.json        the app's record: name, created_at, images, classes, pid, app status
        config.json     the trainer's RunConfig (written by the app; the trainer reads it)
        data.patches/   the patch set the run trains on (kept so the run can be repeated exactly)
        events.jsonl    the trainer's progress protocol, one JSON object per line
        robustness.json the blur robustness report (``python -m trainer robustness``), if measured
        ...             the trainer's model files, metrics.csv, evaluation

The truth about a run is its ``events.jsonl`` (written by the trainer, which outlives a crashed
app) plus ``run.json`` (what the app saw). :func:`run_status` combines them: a run whose trainer
ended without a terminal event is *failed* when the app watched it die, and *interrupted* when
the app itself went away first (closed or crashed), so the user can resume it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cellviewer.core.project.lock import pid_alive

RUN_FILE = "run.json"
LAST_MODEL = "last.cvmodel"  # the trainer's last model file, with the state to resume from
BEST_MODEL = "best.cvmodel"  # the model a finished run keeps (its best validation epoch)
CONFIG_FILE = "config.json"
EVENTS_FILE = "events.jsonl"
PATCHSET_DIR = "data.patches"
ROBUSTNESS_FILE = "robustness.json"  # the trainer's blur robustness report

CREATED = "created"  # folder and config written, trainer never started
RUNNING = "running"
FINISHED = "finished"
STOPPED = "stopped"  # the user asked it to stop; its model files were written
FAILED = "failed"  # error event, or the trainer died while the app watched
INTERRUPTED = "interrupted"  # the app closed or crashed while the trainer was going
STATUSES = (CREATED, RUNNING, FINISHED, STOPPED, FAILED, INTERRUPTED)
TERMINAL = frozenset({FINISHED, STOPPED, FAILED, INTERRUPTED})
#: a run in these states may continue from its last model file
RESUMABLE = frozenset({STOPPED, INTERRUPTED, FAILED})


class RunError(ValueError):
    """A run folder or its files are unusable; the message names the file and the cause."""


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def runs_root(project_path: str | os.PathLike) -> Path:
    """``<folder>/<project name>.runs`` next to the project file ``<folder>/<name>.<ext>``."""
    p = Path(project_path)
    return p.parent / f"{p.stem}.runs"


def safe_run_name(name: str) -> str:
    """A folder-safe form of a user's run name (letters, digits, ``.-_``; others become ``_``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._")
    return cleaned or "run"


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: not valid JSON ({exc})") from exc


def write_json_atomic(path: Path, data: dict) -> None:
    """Write to a temporary file and rename, so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_events(path: str | os.PathLike) -> list[dict]:
    """Every protocol event of an ``events.jsonl`` (none when the file is absent); a torn last
    line (a trainer killed while writing) and non-JSON lines are skipped, as the live reader
    does."""
    from trainer.formats.protocol import read_events as _read

    p = Path(path)
    if not p.is_file():
        return []
    try:
        return _read(p)
    except OSError as exc:
        raise RunError(f"{p}: cannot read ({exc.strerror or exc})") from exc


def current_attempt(events: list[dict]) -> list[dict]:
    """The events since the last ``started``: a resumed run appends a new attempt to the file."""
    for i in range(len(events) - 1, -1, -1):
        if events[i].get("event") == "started":
            return events[i:]
    return events


def is_stop_request(stopped: dict | None) -> bool:
    """Whether a ``stopped`` event was caused by a stop request (not by the end or by early
    stopping), judged from its ``reason`` text."""
    if not stopped:
        return False
    return str(stopped.get("reason", "")).lower() == "stop-request"  # protocol.StopReason


def process_token(pid: int | None) -> str | None:
    """Something that tells this process apart from a later one given the same id: its start
    time (Linux: ``/proc/<pid>/stat``, in clock ticks since boot). None where it cannot be
    told (another system, no such process)."""
    if not pid or pid <= 0:
        return None
    try:
        raw = Path(f"/proc/{int(pid)}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # the command name (2nd field) is in parentheses and may hold spaces: split after it
    fields = raw[raw.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None  # field 22 of the file


def _is_zombie(pid: int) -> bool:
    try:
        raw = Path(f"/proc/{int(pid)}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return raw[raw.rfind(")") + 2:][:1] in ("Z", "X")


def process_alive(pid: int | None, token: str | None = None) -> bool:
    """Whether the process the app launched (``pid``, recorded with its :func:`process_token`)
    still runs: alive, not a zombie, and, where the token can be read, the same process and
    not a later one that was given the same id."""
    if not pid or int(pid) <= 0 or not pid_alive(int(pid)):
        return False
    if _is_zombie(int(pid)):
        return False
    if token is not None:
        now = process_token(pid)
        if now is not None and now != str(token):
            return False
    return True


def run_status(meta: dict, events: list[dict], alive: bool | None = None) -> str:
    """The state of a run from what the app recorded (``meta``, run.json) and what the trainer
    wrote (``events``). ``alive``: whether its trainer process runs (looked up from the
    recorded pid and its start token when None).

    A launched run whose process is alive is *running* from the moment it was spawned, before
    its ``started`` event: the launcher records the child's pid and token as soon as the
    spawn returns (the child has exec'd by then), and nothing here looks at the command line,
    which before the exec is still the app's."""
    attempt = current_attempt(events)
    kinds = {e.get("event") for e in attempt}
    app_status = meta.get("app_status")
    if "error" in kinds:
        return FAILED
    stopped = next((e for e in reversed(attempt) if e.get("event") == "stopped"), None)
    if "finished" in kinds or stopped is not None:
        if app_status == INTERRUPTED:
            return INTERRUPTED
        return STOPPED if is_stop_request(stopped) else FINISHED
    # no terminal event in this attempt
    if app_status in (FAILED, INTERRUPTED):
        return app_status
    if not meta.get("launched_at"):
        return CREATED
    if meta.get("ended_at"):  # the app saw the process end without a terminal event
        return FAILED
    if alive is None:
        alive = process_alive(meta.get("pid"), meta.get("pid_token"))
    return RUNNING if alive else INTERRUPTED


@dataclass
class Run:
    """One run folder. Cheap to create; reads its files when asked."""

    folder: Path
    meta: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.folder.name)

    @property
    def run_file(self) -> Path:
        return self.folder / RUN_FILE

    @property
    def config_path(self) -> Path:
        return self.folder / CONFIG_FILE

    @property
    def events_path(self) -> Path:
        return self.folder / EVENTS_FILE

    @property
    def patchset_path(self) -> Path:
        return self.folder / PATCHSET_DIR

    @property
    def processes(self) -> int:
        """Trainer processes the run trains with (run.json's ``processes``: one per GPU under
        torchrun); 1 where it says nothing or nonsense. A resume uses as many."""
        value = self.meta.get("processes", 1)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 1 \
            else 1

    def reload(self) -> Run:
        self.meta = read_json(self.run_file)
        return self

    def save(self) -> None:
        write_json_atomic(self.run_file, self.meta)

    def update(self, **fields) -> None:
        """Merge ``fields`` into run.json (as it is on disk now: another ``Run`` object of the
        same folder may have written since) and write it at once."""
        try:
            current = read_json(self.run_file)
        except RunError:
            current = {}
        self.meta = {**self.meta, **current, **fields}
        self.save()

    def config(self) -> dict:
        cfg = read_json(self.config_path)
        if not cfg:
            raise RunError(f"{self.config_path}: missing or empty run configuration")
        return cfg

    def events(self) -> list[dict]:
        return read_events(self.events_path)

    def status(self, alive: bool | None = None) -> str:
        return run_status(self.meta, self.events(), alive)

    # --- what the trainer reported ------------------------------------------------------------
    def summary(self) -> RunSummary:
        return RunSummary.from_events(self.events())

    def model_path(self) -> Path | None:
        """The model file the run reported (best model of its last attempt), if it exists."""
        path = self.summary().model_path
        if path is None:
            return None
        p = Path(path)
        # the run folder's own file first: the project (with its runs) may have been moved or
        # copied since the trainer wrote the absolute path
        for candidate in (self.folder / p.name, p if p.is_absolute() else self.folder / p):
            if candidate.is_file():
                return candidate
        return None

    # --- state changes the app records -----------------------------------------------------
    def mark_launched(self, pid: int, resumed: bool = False, token: str | None = None) -> None:
        """The trainer process was spawned (call it as soon as the spawn returns): its pid and
        start token (:func:`process_token`, read now when not given) make the run *running*
        until it writes a terminal event or ends."""
        attempts = int(self.meta.get("attempts", 0)) + 1
        self.update(
            launched_at=_now(), pid=int(pid), pid_token=token or process_token(pid),
            ended_at=None, exit_code=None, app_status=RUNNING, attempts=attempts,
            resumed=bool(resumed), detached=False,
        )

    def process_alive(self) -> bool:
        """Whether the trainer process recorded in run.json still runs."""
        return process_alive(self.meta.get("pid"), self.meta.get("pid_token"))

    def mark_ended(self, exit_code: int | None, crashed: bool, failure: str | None = None) -> None:
        """The app saw the trainer exit. ``crashed``: it died without a terminal event;
        ``failure``: what went wrong, in words for the user (kept for the next session)."""
        self.update(ended_at=_now(), exit_code=exit_code, pid=None, pid_token=None,
                    app_status=FAILED if crashed else None, failure=failure)

    def mark_interrupted(self) -> None:
        """The app is going away while this run is going: show it as interrupted next time."""
        self.update(app_status=INTERRUPTED, ended_at=_now(), pid=None, pid_token=None)

    def mark_detached(self) -> None:
        """The app let go of this run's trainer, which goes on in the background (the app
        closed the project or quit with "Keep running"): its pid stays recorded, so a later
        session finds it running and follows its events.jsonl."""
        self.update(detached=True)


@dataclass
class RunSummary:
    """What a run's events say, for the run list and the results view.

    A damaged ``events.jsonl`` (edited by hand, written by another program, a disk error) still
    gives a summary: an event whose fields cannot be what the protocol says (an epoch that is
    not a whole number) is left out and described in ``damaged``, so the run shows as
    damaged-but-readable instead of breaking the run list."""

    started: dict | None = None
    epochs: list[dict] = field(default_factory=list)
    stopped: dict | None = None
    finished: dict | None = None
    error: dict | None = None
    checkpoints: list[dict] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)

    @property
    def is_damaged(self) -> bool:
        """Whether some events were left out because they were damaged."""
        return bool(self.damaged)

    @classmethod
    def from_events(cls, events: list[dict]) -> RunSummary:
        s = cls()
        # epochs of every attempt (a resumed run continues its curves); the rest of the last one
        by_epoch: dict[int, dict] = {}
        for i, ev in enumerate(events, 1):
            kind = ev.get("event")
            if kind == "epoch":
                number = _epoch_number(ev.get("epoch", len(by_epoch) + 1))
                if number is None:
                    s.damaged.append(f"event {i} (epoch): its epoch {ev.get('epoch')!r} is not "
                                     "a whole number; left out")
                    continue
                by_epoch[number] = ev
        s.epochs = [by_epoch[k] for k in sorted(by_epoch)]
        for ev in current_attempt(events):
            kind = ev.get("event")
            if kind == "started":
                s.started = ev
            elif kind == "stopped":
                s.stopped = ev
            elif kind == "finished":
                s.finished = ev
            elif kind == "error":
                s.error = ev
            elif kind == "checkpoint":
                s.checkpoints.append(ev)
        return s

    @property
    def model_path(self) -> str | None:
        for ev in (self.finished, *reversed(self.checkpoints)):
            if not ev:
                continue
            for key in ("model_path", "best_model", "model", "path"):
                val = ev.get(key)
                if isinstance(val, str) and val:
                    return val
        return None

    @property
    def total_epochs(self) -> int | None:
        if self.started:
            for key in ("epochs", "max_epochs", "total_epochs"):
                if isinstance(self.started.get(key), int):
                    return self.started[key]
            cfg = self.started.get("config")
            if isinstance(cfg, dict) and isinstance(cfg.get("epochs"), int):
                return cfg["epochs"]
        return None

    @property
    def best_epoch(self) -> dict | None:
        """The epoch event of the model kept as ``best.cvmodel``: the one the trainer names in
        ``finished``, else (a run still going, or cut short) the first epoch with the highest
        validation accuracy, as the trainer's early stopping picks it."""
        if not self.epochs:
            return None
        named = (self.finished or {}).get("best_epoch")
        if isinstance(named, int):
            for ev in self.epochs:
                if ev.get("epoch") == named:
                    return ev
        scored = [ev for ev in self.epochs if isinstance(ev.get("val_acc"), int | float)
                  and not isinstance(ev.get("val_acc"), bool)]
        return max(scored, key=lambda ev: ev["val_acc"]) if scored else None

    @property
    def classes(self) -> list[str]:
        for ev in (self.finished, self.started):
            if ev and isinstance(ev.get("classes"), list):
                return [str(c) for c in ev["classes"]]
        return []


def _epoch_number(value: object) -> int | None:
    """An epoch number (1, 2, ... or 3.0 as another writer may put it), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


class RunRegistry:
    """The runs of one project (one folder of run folders)."""

    def __init__(self, project_path: str | os.PathLike) -> None:
        self.project_path = Path(project_path)
        self.root = runs_root(self.project_path)

    def runs(self) -> list[Run]:
        """Every run, oldest first; folders that are not runs are skipped."""
        if not self.root.is_dir():
            return []
        found = []
        for folder in self.root.iterdir():
            if folder.is_dir() and (folder / RUN_FILE).is_file():
                try:
                    found.append(Run(folder, read_json(folder / RUN_FILE)))
                except RunError:
                    continue  # a damaged run.json hides one run, not the whole list
        return sorted(found, key=lambda r: (str(r.meta.get("created_at", "")), r.folder.name))

    def get(self, name: str) -> Run:
        folder = self.root / safe_run_name(name)
        if not (folder / RUN_FILE).is_file():
            raise RunError(f"{folder}: no such run")
        return Run(folder, read_json(folder / RUN_FILE))

    def unique_name(self, base: str) -> str:
        """``base`` made folder-safe, with ``-2``, ``-3``... appended when taken."""
        base = safe_run_name(base)
        name, i = base, 1
        while (self.root / name).exists():
            i += 1
            name = f"{base}-{i}"
        return name

    def create(self, name: str, **meta) -> Run:
        """A new run folder with its run.json (``name`` made unique)."""
        name = self.unique_name(name)
        folder = self.root / name
        folder.mkdir(parents=True)
        run = Run(folder, {"name": name, "created_at": _now(), "app_status": None, **meta})
        run.save()
        return run

    def repeat(self, run: Run, name: str | None = None) -> Run:
        """A new run with the same configuration and patch set (a copy of its data, so the
        repeat trains on exactly the same patches even if the project changes)."""
        cfg = run.config()
        new = self.create(name or f"{run.name}-repeat", repeat_of=run.name,
                          **{k: v for k, v in run.meta.items()
                             if k in ("images", "classes", "label_counts", "project",
                                      "processes")})
        if run.patchset_path.is_dir():
            shutil.copytree(run.patchset_path, new.patchset_path)
            cfg["patchset"] = str(new.patchset_path)
        cfg["out_dir"] = str(new.folder)
        write_json_atomic(new.config_path, cfg)
        return new


def trainer_invocation(args: list[str], processes: int = 1) -> tuple[str, list[str]]:
    """Program and arguments that run the trainer CLI with ``args`` (``["robustness", ...]``):
    the same Python (``-u -m trainer``), or the frozen app itself with ``--run-trainer`` (it
    has no ``-m``). Start it with :func:`trainer_env`. ``processes`` > 1: torchrun
    (``-m torch.distributed.run``) starts that many trainers on this machine, one per GPU;
    its ``--standalone`` rendezvous picks a free port, so two such runs do not collide."""
    if processes > 1:
        if getattr(sys, "frozen", False):
            raise RunError("training on several GPUs needs a Python installation of "
                           "CellViewer (the packaged app runs one trainer process)")
        return sys.executable, ["-u", "-m", "torch.distributed.run", "--standalone",
                                "--nproc-per-node", str(int(processes)), "-m", "trainer", *args]
    if getattr(sys, "frozen", False):
        return sys.executable, ["--run-trainer", *args]
    return sys.executable, ["-u", "-m", "trainer", *args]


def trainer_command(
    config_path: str | os.PathLike, extra: list[str] | None = None, processes: int = 1
) -> tuple[str, list[str]]:
    """Program and arguments that start the trainer on a run configuration (see
    :func:`trainer_invocation`)."""
    return trainer_invocation(["train", "--config", str(config_path), *(extra or [])],
                              processes)


def robustness_args(run: Run) -> list[str]:
    """Trainer arguments that measure the blur robustness of ``run``'s best model on the run's
    validation cells (``split.npz`` beside the model) and write ``robustness.json`` (and
    ``.csv``, ``.md``) into the run folder, where :func:`read_robustness` finds them."""
    model = run.model_path()
    if model is None:
        raise RunError(f"{run.folder}: the run has no model file to measure")
    return ["robustness", "--model", str(model), "--out", str(run.folder)]


def read_robustness(folder: str | os.PathLike) -> dict | None:
    """The blur robustness report in a run folder (``robustness.json`` as
    ``trainer.robustness.RobustnessReport`` writes it), or None where it was not measured.
    Raises :class:`RunError` naming the file when it is unreadable or not such a report."""
    path = Path(folder) / ROBUSTNESS_FILE
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except OSError as exc:
        raise RunError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise RunError(f"{path}: not a blur robustness report (no list of 'rows')")
    for key in ("clean_accuracy", "clean_macro_f1"):
        if not _is_number(data.get(key)):
            raise RunError(f"{path}: not a blur robustness report ({key!r} is not a number)")
    for i, row in enumerate(data["rows"], 1):
        if not (isinstance(row, dict) and row.get("mode") in ("post", "pre")
                and _is_number(row.get("sigma")) and _is_number(row.get("macro_f1"))):
            raise RunError(f"{path}: row {i} of 'rows' needs a mode ('post' or 'pre'), a sigma "
                           "and a macro_f1")
    return data


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def robustness_value(report: dict, sigma: float, mode: str = "post",
                     key: str = "delta_macro_f1") -> float | None:
    """One figure of a robustness report (from :func:`read_robustness`): ``key`` of the row
    of ``mode`` at ``sigma`` (None where that sigma was not measured)."""
    for row in report.get("rows", []):
        if row.get("mode") == mode and abs(float(row.get("sigma", -1.0)) - sigma) < 1e-9:
            value = row.get(key)
            return float(value) if _is_number(value) else None
    return None


def can_resume(run: Run) -> bool:
    """Whether the run has a last model file to continue from."""
    return (run.folder / LAST_MODEL).is_file()


def resume_args(run: Run) -> list[str]:
    """Trainer arguments that continue ``run`` from its last model file (the trainer's
    ``--resume`` with no path: the configuration's run folder)."""
    if not can_resume(run):
        raise RunError(f"{run.folder / LAST_MODEL}: no last model file to resume from (the run "
                       "ended before its first epoch was saved); repeat the run instead")
    relocate_config(run)
    return ["--resume"]


def relocate_config(run: Run) -> None:
    """Point the run's config.json at the run folder where it is now (the project and its runs
    may have been moved since the run was made), so the trainer writes there."""
    cfg = run.config()
    changed = False
    if Path(cfg.get("out_dir", "")) != run.folder:
        cfg["out_dir"] = str(run.folder)
        changed = True
    if not Path(cfg.get("patchset", "")).is_dir() and run.patchset_path.is_dir():
        cfg["patchset"] = str(run.patchset_path)
        changed = True
    if changed:
        write_json_atomic(run.config_path, cfg)


def trainer_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the trainer process: ``base`` (default ``os.environ``) plus the folder
    that holds the GUI's own ``trainer`` package on ``PYTHONPATH`` (a source checkout is not
    installed, and the child must run the same trainer as the app), and unbuffered output so
    progress arrives as it happens."""
    env = dict(os.environ if base is None else base)
    env["PYTHONUNBUFFERED"] = "1"
    if not getattr(sys, "frozen", False):
        import trainer

        root = str(Path(trainer.__file__).resolve().parent.parent)
        parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        if root not in parts:
            env["PYTHONPATH"] = os.pathsep.join([root, *parts])
    return env


def register_model(store, run: Run) -> int:
    """Add the run's model to the project's models table (once); returns the model id.

    ``store`` is a :class:`cellviewer.core.store.ProjectStore`. The model record keeps the run's
    configuration and final metrics so the model panel can show them without opening the file.
    """
    known = run.meta.get("model_id")
    if known is not None and any(m.id == known for m in store.models()):
        return int(known)
    path = run.model_path()
    if path is None:
        raise RunError(f"{run.folder}: the run has no model file yet")
    summary = run.summary()
    cfg = run.config()
    classes = summary.classes or list(run.meta.get("classes") or [])
    metrics = {}
    if summary.finished:
        metrics = {k: v for k, v in summary.finished.items() if k not in ("v", "event")}
    meta = {"run": run.name, "run_folder": str(run.folder), "config": cfg, "final": metrics}
    model_id = store.add_model(run.name, str(path), str(cfg.get("model", "")), classes, meta)
    run.update(model_id=int(model_id))
    return int(model_id)
