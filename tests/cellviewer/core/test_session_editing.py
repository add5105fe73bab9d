"""The project session, the editor and the observable cells of the open image, without Qt:
every edit from any path reaches the cells model through the store's change events."""

from __future__ import annotations

import numpy as np
import pytest

from cellviewer.core.cells import editing
from cellviewer.core.cells.editing import EditError
from cellviewer.core.cells.image_cells import load_image_cells
from cellviewer.core.project.session import ProjectSession
from cellviewer.core.project.users import NoUserError
from cellviewer.core.store import ProjectStore


def _project(path, n=50, images=2):
    with ProjectStore.create(path) as store:
        store.user = "maker"
        a = store.add_class("tumour")
        b = store.add_class("stroma")
        for i in range(images):
            image = store.add_image(f"img{i}.png", 1000, 800)
            rng = np.random.default_rng(i)
            xy = rng.uniform(0, 800, size=(n, 2))
            store.add_cells(image, xy, [a if k % 2 else b for k in range(n)])
        model = store.add_model("m", None, "cnn", ["tumour", "stroma"])
        ids = list(store.cell_arrays(1).ids)
        probs = np.tile(np.array([[0.9, 0.1]], dtype=np.float32), (len(ids), 1))
        store.put_predictions(model, ids, probs)
    return path, a, b, model


class Recorder:
    def __init__(self, cells):
        self.seen = []
        ev = cells.events
        ev.reset.connect(lambda: self.seen.append(("reset",)))
        ev.inserted.connect(lambda idx: self.seen.append(("inserted", list(idx))))
        ev.removed.connect(lambda idx, ids: self.seen.append(("removed", list(idx), list(ids))))
        ev.changed.connect(lambda idx, f: self.seen.append(("changed", list(idx), set(f))))
        ev.predictions.connect(lambda idx: self.seen.append(("predictions", idx)))


@pytest.fixture
def session(tmp_path, monkeypatch):
    monkeypatch.delenv("CELLVIEWER_USER", raising=False)
    path, a, b, model = _project(tmp_path / "p.cvproj")
    asked = []
    s = ProjectSession(ask_user=lambda hint: asked.append(hint) or "alice",
                       suggested_user=lambda: "from-settings")
    s.open(path)
    s.set_image(1)
    s.load_now()
    s.asked = asked
    s.classes = (a, b)
    s.model = model
    yield s
    s.close()


def test_the_user_is_asked_once_before_the_first_edit_of_any_kind(session):
    a, _b = session.classes
    assert session.user is None and session.asked == []
    cell = str(session.cells.ids[session.cells.class_id != a][0])
    # an edit straight through the store (as any panel might) still asks first
    session.store.set_labels([cell], a)
    assert session.asked == ["from-settings"]
    editing.delete(session, [str(session.cells.ids[1])])
    assert session.asked == ["from-settings"]  # once per launch
    assert session.store.history(cell)[-1].user == "alice"


def test_declining_the_name_refuses_the_edit_and_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("CELLVIEWER_USER", raising=False)
    path, a, _b, _m = _project(tmp_path / "p.cvproj")
    s = ProjectSession(ask_user=lambda hint: None)
    s.open(path)
    s.set_image(1)
    s.load_now()
    before = s.cells.class_id.copy()
    with pytest.raises(EditError, match="recorded with a name"):
        editing.label(s, [str(s.cells.ids[0])], a)
    assert (s.cells.class_id == before).all()
    headless = ProjectSession()  # no prompt, no CELLVIEWER_USER: refuse
    s.close()
    headless.open(path)
    with pytest.raises(NoUserError, match="CELLVIEWER_USER"):
        headless.store.delete_cells([str(before[0])])
    headless.close()


def test_label_undo_redo_update_the_cells_in_place_with_index_events(session):
    a, b = session.classes
    cells = session.cells
    rec = Recorder(cells)
    ids = [str(i) for i in cells.ids[:3]]
    old = cells.class_id[:3].copy()
    result = editing.label(session, ids, a)
    assert result.count == 3 and "tumour" in result.message
    assert (cells.class_id[:3] == a).all()
    assert rec.seen[-1][0] == "changed" and rec.seen[-1][2] == {"class_id"}
    assert "reset" not in [e[0] for e in rec.seen]  # no reload after an edit
    assert editing.undo(session).count == 1
    assert (cells.class_id[:3] == old).all()
    editing.redo(session)
    assert (cells.class_id[:3] == a).all()
    assert cells.source_name(0) == "manual"


def test_add_delete_and_their_undo_keep_the_cells_sorted_and_complete(session):
    session.set_active_model(session.model)
    session.load_now()
    cells = session.cells
    rec = Recorder(cells)
    n = len(cells)
    added = editing.add(session, [[5.0, 6.0]], session.classes[0])
    assert len(cells) == n + 1 and rec.seen[-1][0] == "inserted"
    new = added.ids[0]
    assert cells.indices_of([new])[0] == n  # newest key: last
    victims = [str(i) for i in cells.ids[10:13]]
    editing.delete(session, victims)
    assert len(cells) == n - 2
    kind, idx, ids = rec.seen[-1]
    assert kind == "removed" and idx == [10, 11, 12] and ids == victims
    editing.undo(session)  # they come back in their place (sorted by key)
    assert len(cells) == n + 1
    assert list(cells.indices_of(victims)) == [10, 11, 12]
    assert (np.diff(cells.rows) > 0).all()
    # and their prediction came back too
    assert np.allclose(cells.confidence[10:13], 0.9)


def test_moves_review_and_edits_of_other_images(session):
    cells = session.cells
    rec = Recorder(cells)
    cid = str(cells.ids[4])
    editing.move(session, cid, 12.5, 13.5)
    assert tuple(cells.xy[4]) == (12.5, 13.5) and rec.seen[-1][2] == {"xy"}
    editing.review(session, cid, session.classes[1], accepted=False)
    assert cells.status_name(4) == "annotated" and cells.source_name(4) == "corrected"
    # one undo reverts the whole review decision
    editing.undo(session)
    assert cells.status_name(4) == "unreviewed"
    n = len(rec.seen)
    other = [str(i) for i in session.store.cell_arrays(2).ids[:5]]
    editing.delete(session, other)  # another image: nothing here changes
    assert len(rec.seen) == n


def test_the_active_model_is_kept_in_the_project(session, tmp_path):
    path = session.store.path
    session.set_active_model(session.model)
    assert session.load_request().model_id == session.model
    session.load_now()
    assert session.cells.has_predictions()
    assert np.allclose(session.cells.confidence, 0.9)
    session.close()
    again = ProjectSession()
    again.open(path)
    assert again.active_model_id == session.model
    again.set_image(1)
    request = again.load_request()
    assert again.loaded(request, load_image_cells(request))
    assert (again.cells.pred_class == session.classes[0]).all()
    again.close()


def test_a_background_load_applies_edits_made_while_it_was_in_flight(session):
    a, _b = session.classes
    session.set_image(2)
    request = session.load_request()
    stale = load_image_cells(request)  # read before the edit
    first = str(stale.ids[0])
    editing.label(session, [first], a)  # arrives while "loading"
    editing.delete(session, [str(stale.ids[1])])
    assert session.loaded(request, stale)
    cells = session.cells
    assert cells.class_id[cells.indices_of([first])[0]] == a
    assert cells.indices_of([str(stale.ids[1])])[0] == -1
    assert len(cells) == len(stale) - 1
    # a result older than the newest request is dropped
    session.set_image(1)
    old = session.load_request()
    session.set_active_model(session.model)
    assert not session.loaded(old, load_image_cells(old))


def test_prediction_chunks_update_the_model_without_the_store(session):
    session.set_active_model(session.model)
    session.load_now()
    cells = session.cells
    rec = Recorder(cells)
    ids = [str(i) for i in cells.ids[:4]] + ["not-a-cell"]
    at = cells.set_predictions(ids, np.array([2, 2, 2, 2, 2]), np.full(5, 0.5), session.model)
    assert list(at) == [0, 1, 2, 3]
    assert rec.seen[-1][0] == "predictions"
    assert np.allclose(cells.confidence[:4], 0.5)
    # a chunk of another model is not this model's
    assert len(cells.set_predictions(ids, np.zeros(5), np.zeros(5), 999)) == 0


def test_closing_releases_the_lock_and_opening_another_project_closes_the_first(session,
                                                                                 tmp_path):
    first = session.store
    lock_file = session.lock.path
    assert lock_file.exists()
    path2, *_ = _project(tmp_path / "q.cvproj", n=3, images=1)
    seen = []
    session.events.project.connect(seen.append)
    session.open(path2)
    assert not lock_file.exists()
    assert first._conn is None or first is not session.store
    assert session.image_id is None and len(session.cells) == 0
    assert seen == [session.store]
