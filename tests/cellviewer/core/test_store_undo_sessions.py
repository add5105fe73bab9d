"""Undo and redo never revert another session's edit, even with the project lock bypassed.

The undo stack lives in the project file, so two processes editing one project share it. Each
action records the session (one store connection) that made it; undo and redo step back only
through this session's own actions, or those of an ended session of the same user (so undo still
survives closing and reopening). The second session here is a real process (``Peer``) or a
second real connection, both on the same SQLite file.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cellviewer.core.store import ProjectError, ProjectStore

REPO = Path(__file__).resolve().parents[3]

# A second CellViewer process on the same project: reads one command per line from stdin and
# answers "ok <result>" or "refused <error type> <message>".
PEER = r"""
import sys
from cellviewer.core.store import ProjectError, ProjectStore

store = ProjectStore.open(sys.argv[1])
store.user = sys.argv[2]
print("ready", flush=True)
for line in sys.stdin:
    cmd, *args = line.split()
    try:
        if cmd == "label":
            cls = None if args[1] == "-" else int(args[1])
            print("ok", store.set_labels([args[0]], cls), flush=True)
        elif cmd == "undo":
            print("ok", store.undo(), flush=True)
        elif cmd == "redo":
            print("ok", store.redo(), flush=True)
        elif cmd == "close":
            store.close()
            print("ok", flush=True)
        else:
            break
    except ProjectError as e:
        print("refused", type(e).__name__, str(e).replace("\n", " "), flush=True)
"""

# Two of these run at once, each labelling only its own cells and undoing right away.
RACER = r"""
import random
import sys
import time
from cellviewer.core.store import ProjectError, ProjectStore

path, user, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = ProjectStore.open(path)
store.user = user
table = store.cell_table()
mine = [i for i, m in zip(table["ids"], table["metadata"]) if m.get("owner") == user]
classes = [c.id for c in store.classes()]
done = refused = 0
for i in range(rounds):
    store.set_labels([mine[i % len(mine)]], classes[i % len(classes)])
    time.sleep(random.uniform(0, 0.01))  # let the other process write in between
    try:
        done += store.undo()
    except ProjectError:
        refused += 1
store.close()
print(done, refused, flush=True)
"""


def _env(user: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "CELLVIEWER_USER": user}


class Peer:
    """A second process with the project open (no lock: what the core must survive alone)."""

    def __init__(self, path: Path, user: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PEER, str(path), user], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=_env(user), cwd=REPO)
        assert self._line() == "ready"

    def _line(self, timeout: float = 60.0) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "the peer process did not answer"
        line = self.proc.stdout.readline()
        assert line, "the peer process ended"
        return line.strip()

    def __call__(self, *command: object) -> str:
        self.proc.stdin.write(" ".join(str(c) for c in command) + "\n")
        self.proc.stdin.flush()
        return self._line()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture
def project(tmp_path):
    """A project with an image, two classes and four unlabelled cells: (path, ids, classes)."""
    path = tmp_path / "p.cvproj"
    with ProjectStore.create(path) as store:
        image = store.add_image("/data/a.png", 100, 100)
        classes = [store.add_class("a"), store.add_class("b")]
        ids = store.add_cells(image, [[1, 1], [2, 2], [3, 3], [4, 4]])
    return path, ids, classes


def test_undo_after_another_process_wrote_refuses_naming_its_user(project):
    path, ids, (a, b) = project
    with ProjectStore.open(path) as store, Peer(path, "bob") as bob:
        store.user = "alice"
        store.set_labels([ids[0]], a)
        assert bob("label", ids[1], b) == "ok 1"
        with pytest.raises(ProjectError, match=r"bob .*'Label 1 cell as b'") as refused:
            store.undo()
        err = refused.value
        assert type(err).__name__ == "UndoConflictError"
        assert str(path) in str(err) and err.user == "bob" and err.at.endswith("Z")
        # Nothing was reverted: bob's label and alice's label both stand.
        assert store.cell(ids[1]).class_id == b and store.cell(ids[0]).class_id == a
        # bob undoes his own edit; alice's is then hers to undo.
        assert bob("undo") == "ok True"
        assert store.cell(ids[1]).class_id is None
        with pytest.raises(ProjectError, match="bob undid 'Label 1 cell as b'"):
            store.undo()  # bob's undone edit is still on the redo stack above alice's


def test_the_same_user_in_another_live_process_is_another_session(project):
    path, ids, (a, b) = project
    with ProjectStore.open(path) as store, Peer(path, "alice") as other:
        store.user = "alice"
        store.set_labels([ids[0]], a)
        assert other("label", ids[1], b) == "ok 1"
        with pytest.raises(ProjectError, match=r"alice made .* another session \(process "
                           rf"{other.proc.pid} on .*still open\)"):
            store.undo()
        # and the other process cannot undo this one's edit once its own is undone
        assert other("undo") == "ok True"
        answer = other("undo")
        assert answer.startswith("refused UndoConflictError"), answer
        assert store.cell(ids[0]).class_id == a
        # Once that process has closed, its stack is alice's to undo (a later session of hers).
        assert other("close") == "ok"
        assert store.redo() is True  # the other process's undone label comes back
        assert store.cell(ids[1]).class_id == b
        assert store.undo() and store.undo()
        assert store.cell(ids[0]).class_id is None and store.cell(ids[1]).class_id is None


def test_redo_of_another_sessions_undo_is_refused(project):
    path, ids, (a, _) = project
    with ProjectStore.open(path) as store, Peer(path, "bob") as bob:
        store.user = "alice"
        store.set_labels([ids[0]], a)
        store.undo()
        answer = bob("redo")
        assert answer.startswith("refused UndoConflictError") and "alice undid" in answer, answer
        assert store.cell(ids[0]).class_id is None
        assert store.redo() is True and store.cell(ids[0]).class_id == a


def test_own_edits_undo_while_another_connection_only_reads(project):
    path, ids, (a, b) = project
    with ProjectStore.open(path) as store, ProjectStore.open(path) as other:
        other.user = "bob"
        other.set_labels([ids[3]], b)  # before alice's edits: below her part of the stack
        store.user = "alice"
        store.set_labels([ids[0]], a)
        store.set_labels([ids[1]], a)
        other.cell_table()
        assert store.undo() and store.undo()
        assert store.cell(ids[0]).class_id is None and store.cell(ids[1]).class_id is None
        with pytest.raises(ProjectError, match="bob made 'Label 1 cell as b'"):
            store.undo()  # the next step back is bob's, and his connection is open
        assert store.redo() and store.redo() and not store.redo()
        assert [store.cell(i).class_id for i in ids] == [a, a, None, b]


def test_reopening_as_another_user_cannot_undo_the_first_users_edits(project):
    path, ids, (a, _) = project
    with ProjectStore.open(path) as store:
        store.user = "alice"
        store.set_labels([ids[0]], a)
    with ProjectStore.open(path) as store:
        store.user = "bob"
        assert store.undo_description() == "Label 1 cell as a"  # what is on top
        with pytest.raises(ProjectError, match=r"alice made 'Label 1 cell as a' at .*closed"):
            store.undo()
    with ProjectStore.open(path) as store:
        store.user = "alice"
        assert store.undo() and store.cell(ids[0]).class_id is None


def test_a_killed_session_is_adopted_by_its_user(project):
    path, ids, (a, _) = project
    with Peer(path, "alice") as other:
        assert other("label", ids[0], a) == "ok 1"
        other.proc.kill()
        other.proc.wait()
    with ProjectStore.open(path) as store:
        store.user = "bob"
        with pytest.raises(ProjectError, match="alice made"):
            store.undo()
        store.user = "alice"
        assert store.undo() and store.cell(ids[0]).class_id is None


def test_racing_processes_never_undo_each_others_edits(tmp_path):
    path = tmp_path / "p.cvproj"
    with ProjectStore.create(path) as store:
        image = store.add_image("/data/a.png", 100, 100)
        store.add_class("a")
        store.add_class("b")
        for user in ("alice", "bob"):
            store.add_cells(image, [[i, i] for i in range(1, 6)],
                            metadata=[{"owner": user}] * 5)
    rounds = 25
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(path), user, str(rounds)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(user), cwd=REPO)
             for user in ("alice", "bob")]
    deadline = time.monotonic() + 120
    ends = [p.communicate(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
    outs = [out for out, _ in ends]
    assert [p.returncode for p in procs] == [0, 0], ends
    with ProjectStore.open(path) as store:
        table = store.cell_table()
        owner = {i: m["owner"] for i, m in zip(table["ids"], table["metadata"], strict=True)}
        undos = [h for h in store.history() if h.action == "undo"]
        assert undos, "no undo went through"
        # (an undo of the set-up's add would name a cell that no longer exists: "setup")
        crossed = [(h.user, owner.get(h.cell_id, "setup")) for h in undos
                   if h.user != owner.get(h.cell_id, "setup")]
        assert not crossed, f"{len(crossed)} of {len(undos)} undos reverted the other's edit"
        assert sum(int(o.split()[0]) for o in outs) == len(undos)


def test_change_events_follow_own_undos_and_a_refused_undo_tells_nobody(project):
    path, ids, (a, b) = project
    with ProjectStore.open(path) as store, ProjectStore.open(path) as other:
        store.user, other.user = "alice", "bob"
        events = []
        store.add_listener(events.append)
        store.set_labels([ids[0]], a)
        assert store.undo()
        label, undo = events
        assert (undo.action, undo.op_id, undo.kinds) == ("undo", label.op_id, {"cells"})
        assert undo.cell_rows.tolist() == label.cell_rows.tolist()
        assert store.redo()
        other.set_labels([ids[1]], b)
        store.external_change(("cells",))  # what the app does after another connection wrote
        assert events[-1].action == "external" and events[-1].cell_rows is None
        n = len(events)
        with pytest.raises(ProjectError, match="bob made"):
            store.undo()
        assert len(events) == n  # nothing changed, nothing told
        assert store.cell(ids[1]).class_id == b


def test_the_editor_reports_the_refusal_and_changes_nothing(project):
    from cellviewer.core.cells import editing
    from cellviewer.core.cells.editing import EditError
    from cellviewer.core.project.session import ProjectSession

    path, ids, (a, b) = project
    session = ProjectSession(lock_projects=False)
    session.set_user("alice")
    session.open(path)
    try:
        editing.label(session, [ids[0]], a)
        with Peer(path, "bob") as bob:
            assert bob("label", ids[1], b) == "ok 1"
            with pytest.raises(EditError, match=r"^Cannot undo: .*bob made 'Label 1 cell as b'"):
                editing.undo(session)
        assert [session.store.cell(i).class_id for i in ids[:2]] == [a, b]
    finally:
        session.close()
