"""The trainer as a watched subprocess (real `python -m trainer train`, CPU, tiny data): Stop ends
a run cleanly with its model written; a trainer killed from outside is reported as failed; an
error event is shown in words; a run going when the app closes is interrupted and resumes."""

from __future__ import annotations

import os
import signal
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from fake_host import FakeHost
from PIL import Image

from cellviewer.core.project.demo import demo_points
from cellviewer.core.store import ProjectStore
from cellviewer.core.training import runs
from cellviewer.core.training.patchset import write_project_patchset
from cellviewer.paths import demo_dir
from cellviewer.ui.train.install import install
from cellviewer.ui.train.runs import TrainingManager
from trainer.formats.config import RunConfig

SCREENSHOTS = Path(__file__).resolve().parents[3] / "resources" / "screenshots"
CLASSES = {"normal": 24, "target cell": 24, "spherocyte": 24}
RUN_EPOCHS = 5000

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def patchset(tmp_path_factory) -> Path:
    """A patch set of 72 real demo cells in three classes, shared by the tests here."""
    folder = tmp_path_factory.mktemp("source")
    store = ProjectStore.create(folder / "source.cvproj")
    ids = {name: store.add_class(name) for name in CLASSES}
    left = dict(CLASSES)
    by_image = defaultdict(list)
    for p in demo_points():
        if left.get(p.label, 0) > 0:
            left[p.label] -= 1
            by_image[p.image].append(p)
    for name, points in by_image.items():
        width, height = Image.open(demo_dir() / name).size
        image_id = store.add_image(demo_dir() / name, width, height)
        store.add_cells(image_id, np.array([[p.x, p.y] for p in points]),
                        [ids[p.label] for p in points])
    write_project_patchset(store, folder / "cells.patches")
    store.close()
    return folder / "cells.patches"


def new_run(project: Path, patchset: Path, name: str, **overrides) -> runs.Run:
    run = runs.RunRegistry(project).create(name)
    # A tiny CNN (an epoch takes a fraction of a second: the process is tested, not the model)
    # and more epochs than any test waits for: every run here ends by a stop, a kill or an
    # error, never by finishing, however fast the machine. A heartbeat at every step: an epoch
    # of three batches can be shorter than any fixed heartbeat on an idle machine, and then no
    # batch event would ever come.
    cfg = RunConfig(patchset=str(patchset), out_dir=str(run.folder), model="cnn",
                    model_args={"channels": [4, 4, 8, 8]}, flag_limit=24, epochs=RUN_EPOCHS,
                    batch_size=32, device="cpu", patience=0, heartbeat_s=1e-6, num_threads=1,
                    name=name)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    cfg.save(run.config_path)
    return run


def kinds(proc) -> list[str]:
    return [e["event"] for e in proc.events]


def test_stop_ends_the_run_cleanly_with_its_model(qtbot, tmp_path: Path, patchset: Path):
    window = FakeHost(ProjectStore.create(tmp_path / "p.cvproj"))
    qtbot.addWidget(window)
    training = install(window)
    assert training.manager.project_path == tmp_path / "p.cvproj"
    run = new_run(tmp_path / "p.cvproj", patchset, "stop-me")
    proc = training.manager.launch(run)
    training.show_runs()
    training.runs_panel.select(run)
    monitor = training.monitor
    assert monitor.run.folder == run.folder and monitor.process is proc
    assert training.runs_panel.row_status("stop-me") == runs.RUNNING

    qtbot.waitUntil(lambda: monitor.charts.epoch_count() >= 3, timeout=120_000)
    assert len(monitor.charts.batch_x) > 0  # the smoothed per-batch loss is drawn
    assert monitor.figures["epoch"].text().endswith(f"of {RUN_EPOCHS}")
    assert monitor.stop_button.isEnabled()
    if os.environ.get("CELLVIEWER_SCREENSHOTS"):
        training.dock.setFloating(True)
        training.dock.resize(980, 820)
        training.dock.show()
        qtbot.waitExposed(training.dock)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        training.dock.grab().save(str(SCREENSHOTS / "training_progress.png"))

    monitor.stop_button.click()
    assert not monitor.stop_button.isEnabled() and not monitor.kill_button.isHidden()
    qtbot.waitUntil(lambda: proc.status != runs.RUNNING, timeout=60_000)
    assert proc.status == runs.STOPPED
    stopped = next(e for e in proc.events if e["event"] == "stopped")
    assert stopped["reason"] == "stop-request"
    assert kinds(proc)[-1] == "finished"
    assert proc.proc.exit_code == 0  # it ended by itself, not by the kill timer
    assert run.model_path() is not None and runs.can_resume(run)
    assert run.reload().status() == runs.STOPPED
    assert training.runs_panel.row_status("stop-me") == runs.STOPPED
    assert not monitor.stop_button.isEnabled() and monitor.kill_button.isHidden()
    assert monitor.results_button.isEnabled()
    window.store.close()


def test_a_trainer_killed_from_outside_is_failed_not_running(qtbot, tmp_path: Path,
                                                             patchset: Path):
    manager = TrainingManager(tmp_path / "p.cvproj")
    run = new_run(tmp_path / "p.cvproj", patchset, "killed")
    proc = manager.launch(run)
    ended = []
    proc.ended.connect(ended.append)
    qtbot.waitUntil(lambda: "started" in kinds(proc), timeout=120_000)
    os.kill(proc.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: bool(ended), timeout=30_000)
    assert ended == [runs.FAILED] and manager.status(run) == runs.FAILED
    assert "killed" in proc.failure
    # the next session of the app sees the same
    assert runs.RunRegistry(tmp_path / "p.cvproj").get("killed").status() == runs.FAILED
    from cellviewer.ui.train.monitor import RunMonitor

    monitor = RunMonitor()
    qtbot.addWidget(monitor)
    monitor.show_run(run.reload())
    assert monitor.status == runs.FAILED
    assert "killed" in monitor.error_label.text()


def test_an_error_event_is_shown_in_words(qtbot, tmp_path: Path, patchset: Path):
    from cellviewer.ui.train.monitor import RunMonitor

    manager = TrainingManager(tmp_path / "p.cvproj")
    run = new_run(tmp_path / "p.cvproj", patchset, "bad-model", model="resnet_d5")
    monitor = RunMonitor()
    qtbot.addWidget(monitor)
    proc = manager.launch(run)
    monitor.show_run(run, proc)
    qtbot.waitUntil(lambda: proc.status != runs.RUNNING, timeout=120_000)
    assert proc.status == runs.FAILED
    error = next(e for e in proc.events if e["event"] == "error")
    assert error["kind"] == "unknown-model"
    text = monitor.error_label.text()
    assert "resnet_d5" in text and "resnet_d4" in text  # names the model and a fix
    assert not monitor.error_label.isHidden()
    assert run.reload().status() == runs.FAILED


def test_a_run_going_when_the_app_closes_is_interrupted_and_resumes(qtbot, tmp_path: Path,
                                                                    patchset: Path):
    project = tmp_path / "p.cvproj"
    manager = TrainingManager(project)
    run = new_run(project, patchset, "long")
    proc = manager.launch(run)
    qtbot.waitUntil(lambda: "checkpoint" in kinds(proc), timeout=120_000)
    manager.shutdown()  # the app is closing
    assert proc.status == runs.INTERRUPTED and not proc.is_running()

    # the next session
    later = TrainingManager(project)
    (again,) = later.runs()
    assert again.status() == runs.INTERRUPTED and runs.can_resume(again)
    done = max(e["epoch"] for e in again.events() if e["event"] == "epoch")
    resumed = later.resume(again)
    qtbot.waitUntil(lambda: "started" in kinds(resumed), timeout=120_000)
    started = next(e for e in resumed.events if e["event"] == "started")
    assert started["start_epoch"] == done + 1
    assert later.status(again) == runs.RUNNING
    qtbot.waitUntil(lambda: "epoch" in kinds(resumed), timeout=120_000)
    resumed.request_stop()
    qtbot.waitUntil(lambda: not resumed.is_running(), timeout=60_000)
    assert again.reload().status() == runs.STOPPED
    epochs = [e["epoch"] for e in again.summary().epochs]
    assert epochs == list(range(1, epochs[-1] + 1))  # one curve across both attempts


CRASHING_APP = """
import os, signal, sys
from PySide6.QtCore import QCoreApplication
from cellviewer.core.training.runs import RunRegistry
from cellviewer.ui.train.runs import TrainingManager

app = QCoreApplication([])
project = sys.argv[1]
manager = TrainingManager(project)
run = RunRegistry(project).get("crash")
proc = manager.launch(run)

def on_event(ev):
    if ev["event"] == "checkpoint":  # an epoch is saved: now the app dies, no clean-up
        os.kill(os.getpid(), signal.SIGKILL)

proc.event.connect(on_event)
app.exec()
"""


def test_a_run_outlives_an_app_crash_and_is_followed_and_stopped(qtbot, tmp_path: Path,
                                                                 patchset: Path):
    """The app dies (SIGKILL) mid-run; the trainer keeps training into events.jsonl. The next
    session shows the run as running, follows it from the file, and stops it (SIGTERM)."""
    import subprocess
    import sys

    from cellviewer.ui.train.monitor import RunMonitor

    project = tmp_path / "p.cvproj"
    run = new_run(project, patchset, "crash")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    app = subprocess.run([sys.executable, "-c", CRASHING_APP, str(project)], env=env,
                         timeout=180, capture_output=True, text=True)
    assert app.returncode == -signal.SIGKILL, app.stderr
    pid = run.reload().meta["pid"]
    try:
        again = TrainingManager(project).runs()[0]
        assert again.status() == runs.RUNNING
        monitor = RunMonitor()
        qtbot.addWidget(monitor)
        monitor.show_run(again)
        assert monitor.following() and monitor.status == runs.RUNNING
        assert monitor.stop_button.isEnabled()
        seen = monitor.charts.epoch_count()
        qtbot.waitUntil(lambda: monitor.charts.epoch_count() > seen, timeout=120_000)
        monitor.stop()
        qtbot.waitUntil(lambda: not monitor.following(), timeout=60_000)
        assert monitor.status == runs.STOPPED
        assert again.reload().status() == runs.STOPPED and again.model_path() is not None
    finally:
        if runs.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


# --- closing the project while a run is going -----------------------------------------------
def answer_running_box(button: str) -> list[str]:
    """Click ``button`` of the "training is running" question once it is shown (it runs its
    own event loop, exec): found through QApplication.activeModalWidget, polled by a timer.
    Returns the list the box's text is put in when it was answered."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    seen: list[str] = []

    def poll():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox) and box.objectName() == "training_running_box":
            texts = {b.text().replace("&", ""): b for b in box.buttons()}
            assert set(texts) == {"Keep running", "Stop", "Cancel"}
            assert box.defaultButton() is texts["Cancel"]
            seen.append(box.text())
            texts[button].click()
        else:
            QTimer.singleShot(20, poll)

    QTimer.singleShot(0, poll)
    return seen


def test_closing_the_project_asks_and_each_answer_does_what_it_says(qtbot, tmp_path: Path,
                                                                    patchset: Path):
    project = tmp_path / "p.cvproj"
    store = ProjectStore.create(project)
    window = FakeHost(store)
    qtbot.addWidget(window)
    training = install(window)
    going = new_run(project, patchset, "going")
    proc = training.manager.launch(going)
    pid = proc.pid
    # a run just launched reads as running, never as interrupted, before its first event
    assert runs.RunRegistry(project).get("going").status() == runs.RUNNING
    try:
        # Cancel: the project stays open, the run goes on
        seen = answer_running_box("Cancel")
        assert window.close_project() is False
        assert seen == ["1 training run is going."]
        assert window.current_store() is store and proc.is_running()

        # Keep running: the project closes, the trainer goes on without the app
        qtbot.waitUntil(lambda: "checkpoint" in kinds(proc), timeout=120_000)
        seen = answer_running_box("Keep running")
        assert window.close_project() is True and seen
        assert training.manager.project_path is None and training.manager.active() == []
        assert runs.process_alive(pid, going.reload().meta["pid_token"])
        assert going.meta["detached"] is True

        # reopened: re-attached, the list shows it running and the monitor follows its file
        window.set_store(store)
        assert training.runs_panel.row_status("going") == runs.RUNNING
        monitor = training.monitor
        assert monitor.run.folder == going.folder and monitor.following()
        seen_epochs = monitor.charts.epoch_count()
        qtbot.waitUntil(lambda: monitor.charts.epoch_count() > seen_epochs, timeout=120_000)

        # Stop: a second run, launched here, stops (resumable) and the project closes
        second = new_run(project, patchset, "second")
        other = training.manager.launch(second)
        qtbot.waitUntil(lambda: "checkpoint" in kinds(other), timeout=120_000)
        seen = answer_running_box("Stop")
        assert window.close_project() is True and seen
        assert not other.is_running() and other.status == runs.INTERRUPTED
        assert second.reload().status() == runs.INTERRUPTED and runs.can_resume(second)

        # the kept run was not stopped by that; stop it now, as the run list does
        assert runs.process_alive(pid, going.reload().meta["pid_token"])
        monitor.stop()
        qtbot.waitUntil(lambda: not monitor.following(), timeout=60_000)
        assert going.reload().status() == runs.STOPPED and going.model_path() is not None
    finally:
        if runs.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        store.close()


DETACHING_APP = """
import sys
from PySide6.QtCore import QCoreApplication
from cellviewer.core.training.runs import RunRegistry
from cellviewer.ui.train.runs import TrainingManager

app = QCoreApplication([])
project = sys.argv[1]
manager = TrainingManager(project)
proc = manager.launch(RunRegistry(project).get("kept"))

def on_event(ev):
    if ev["event"] == "checkpoint":  # an epoch is saved: "Keep running", and quit
        manager.detach_all()
        app.quit()

proc.event.connect(on_event)
app.exec()
manager.shutdown()  # what aboutToQuit does: nothing is left to stop
print("quit cleanly")
"""


def test_a_kept_run_outlives_the_app_quitting_and_is_followed_next_time(qtbot, tmp_path: Path,
                                                                        patchset: Path):
    """"Keep running", then the app quits normally (Qt and Python tear down): the trainer is
    not killed; the next session finds it running and follows it."""
    import subprocess
    import sys

    from cellviewer.ui.train.monitor import RunMonitor

    project = tmp_path / "p.cvproj"
    run = new_run(project, patchset, "kept")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    app = subprocess.run([sys.executable, "-c", DETACHING_APP, str(project)], env=env,
                         timeout=180, capture_output=True, text=True)
    assert app.returncode == 0 and "quit cleanly" in app.stdout, app.stderr
    pid = run.reload().meta["pid"]
    try:
        again = TrainingManager(project).runs()[0]
        assert again.status() == runs.RUNNING and again.meta["detached"] is True
        monitor = RunMonitor()
        qtbot.addWidget(monitor)
        monitor.show_run(again)
        assert monitor.following()
        seen = monitor.charts.epoch_count()
        qtbot.waitUntil(lambda: monitor.charts.epoch_count() > seen, timeout=120_000)
        monitor.stop()
        qtbot.waitUntil(lambda: not monitor.following(), timeout=60_000)
        assert again.reload().status() == runs.STOPPED
    finally:
        if runs.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
