"""The project session: the open project, its lock, who is editing, the active model and the
image on screen, in one Qt-free object that the app and scripts share.

One :class:`ProjectSession` lives as long as the app (a launch); projects come and go in it.

- **Open / close**: :meth:`open` takes the project's lock (see :mod:`cellviewer.core.project.lock`)
  and opens the store; ``confirm_in_use(error) -> bool`` decides whether to open a project that
  another CellViewer holds. :meth:`close` closes the store, then gives the lock back. The store
  checks the file at open: a damaged one raises ``ProjectDamagedError`` and the project open
  before stays open.
- **Read-only**: ``open(path, read_only=True)`` opens it read-only on purpose (the way out for a
  damaged file: read and export what can be read), without a lock, since it changes nothing; a
  file or folder that cannot be written opens read-only by itself, and a read-only folder cannot
  hold a lock file, so such a project is open without a lock (``lock.held`` False and its
  ``reason``). :attr:`read_only` and :attr:`read_only_reason` say so; every edit is refused
  with ``ProjectReadOnlyError`` naming the file.
- **The user**: asked once per launch, before the first edit of any kind, through
  ``ask_user(suggestion) -> name | None``; the store asks the session before every change
  (``store.user_provider``), so no edit from any panel reaches the project without a name.
  Without ``ask_user`` (headless) the name is ``CELLVIEWER_USER`` or the edit is refused.
- **The active model**: per project, kept in the project (``store.setting("active_model")``), so
  that reopening a project shows its predictions again.
- **The current image** and its cells, :attr:`cells` (:class:`~cellviewer.core.cells.image_cells.
  ImageCells`), which follows every change of the project through the store's change events.

Events (psygnal): ``project(store or None)``, ``image(image id or None)``, ``user(name)``,
``active_model(model id or None)``, ``store_changed(ChangeEvent)`` (every committed change, after
:attr:`cells` has followed it), ``reload_needed()`` (the image's cells must be read again: the
owner of the background work starts :func:`cellviewer.core.cells.image_cells.load_image_cells`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from psygnal import Signal, SignalGroup

from cellviewer.core.cells.image_cells import ImageCells, LoadRequest
from cellviewer.core.project.users import NoUserError, clean_user, env_user
from cellviewer.core.store import ChangeEvent, ProjectStore

ACTIVE_MODEL_KEY = "active_model"


class SessionEvents(SignalGroup):
    project = Signal(object)
    image = Signal(object)
    user = Signal(str)
    active_model = Signal(object)
    store_changed = Signal(object)
    reload_needed = Signal()


class ProjectSession:
    """See the module docstring."""

    def __init__(self, *, ask_user: Callable[[str], str | None] | None = None,
                 suggested_user: Callable[[], str] | None = None,
                 lock_projects: bool = True) -> None:
        self.events = SessionEvents()
        self.cells = ImageCells()
        self.store: ProjectStore | None = None
        self.lock = None
        self.image_id: int | None = None
        self.active_model_id: int | None = None
        self._ask_user = ask_user
        self._suggested_user = suggested_user
        self._user: str | None = env_user()
        self._lock_projects = lock_projects
        self._owned = True  # the store is closed with the project (see attach)
        # A launch starts here: remove what exports killed in an earlier launch left behind.
        from cellviewer.core.export.atomic import remove_leftovers

        remove_leftovers()

    # --- the user ------------------------------------------------------------------------
    @property
    def user(self) -> str | None:
        """Who is editing (None until asked)."""
        return self._user

    def set_user(self, name: str) -> None:
        """Switch the editing user (the status bar's "switch user")."""
        name = clean_user(name) or ""
        if not name:
            raise ValueError("a user name must not be empty")
        self._user = name
        if self.store is not None and not self.store.readonly:
            self.store.user = name
        self.events.user.emit(name)

    def require_user(self) -> str:
        """The editing user, asked for now if nobody said yet; :class:`NoUserError` if the
        question was declined or cannot be asked (headless, no ``CELLVIEWER_USER``)."""
        if self._user:
            return self._user
        if self._ask_user is None:
            raise NoUserError("who is making this change? Set CELLVIEWER_USER "
                              "(or pass --user to a command)")
        suggestion = self._suggested_user() if self._suggested_user is not None else ""
        name = clean_user(self._ask_user(suggestion))
        if not name:
            raise NoUserError("No change was made: every change is recorded with a name, "
                              "and none was given.")
        self.set_user(name)
        return name

    @property
    def read_only(self) -> bool:
        """True when the open project refuses edits (False when none is open)."""
        return self.store is not None and self.store.read_only

    @property
    def read_only_reason(self) -> str:
        """Why the open project is read-only, for people ("" when it is writable)."""
        return self.store.read_only_reason if self.store is not None else ""

    # --- projects ------------------------------------------------------------------------
    def open(self, path: str | Path, *, lock_user: str | None = None,
             confirm_in_use: Callable[[Exception], bool] | None = None,
             read_only: bool = False) -> ProjectStore | None:
        """Open a project (closing the one open before). Returns None when another CellViewer
        holds it and ``confirm_in_use`` said no; raises ProjectError when it cannot be opened
        (the open project then stays open). ``read_only``: see the module docstring."""
        return self._open(Path(path), lock_user, confirm_in_use, create=False,
                          read_only=read_only)

    def create(self, path: str | Path, *, lock_user: str | None = None) -> ProjectStore | None:
        """Create a new project and open it."""
        return self._open(Path(path), lock_user, None, create=True)

    def _open(self, path: Path, lock_user: str | None,
              confirm_in_use: Callable[[Exception], bool] | None,
              create: bool, read_only: bool = False) -> ProjectStore | None:
        lock = None if read_only else self._take_lock(path, lock_user, confirm_in_use)
        if lock is False:
            return None
        try:
            store = (ProjectStore.create(path) if create else
                     # read-only on purpose is the way out for a damaged file: no check
                     ProjectStore.open(path, readonly=read_only, check=not read_only))
        except BaseException:
            if lock is not None:
                lock.release()  # (a lock shared with the open project only drops its count)
            raise
        if store.read_only and lock is not None and lock.held:
            lock.release()  # a read-only project changes nothing: it need not keep others out
            lock = None
        self._close_store()
        self._adopt(store, lock)
        return store

    def attach(self, store: ProjectStore | None, *, own: bool = True) -> None:
        """Work on a store opened elsewhere (a script's, a test's; no lock is taken). The
        session closes it with the project if it ``own``s it; else the caller does. None:
        close the project."""
        if store is self.store:
            return
        if store is None:
            self.close()
            return
        self._close_store()
        self._adopt(store, None)
        self._owned = own

    def _take_lock(self, path: Path, lock_user: str | None,
                   confirm_in_use: Callable[[Exception], bool] | None):
        """The lock (None when locking is off), or False when the user chose not to open."""
        if not self._lock_projects:
            return None
        from cellviewer.core.project.lock import ProjectInUseError, ProjectLock

        user = lock_user or self._user or (self._suggested_user() if self._suggested_user
                                           else "") or "unknown"
        try:
            return ProjectLock.acquire(path, user=user)
        except ProjectInUseError as exc:
            if confirm_in_use is None or not confirm_in_use(exc):
                return False
            return ProjectLock.acquire(path, user=user, force=True)

    def _adopt(self, store: ProjectStore, lock) -> None:
        self.store, self.lock = store, lock
        if not store.readonly:
            store.user_provider = self.require_user
            if self._user:
                store.user = self._user
        store.add_listener(self._on_store_change)
        self.active_model_id = self._stored_active_model()
        self.events.project.emit(store)
        self.events.active_model.emit(self.active_model_id)

    def close(self) -> None:
        """Close the open project (if any) and give its lock back."""
        if self.store is None:
            return
        self._close_store()
        self.events.active_model.emit(None)
        self.events.project.emit(None)

    def _close_store(self) -> None:
        store, lock = self.store, self.lock
        if store is None:
            return
        self.set_image(None)
        self.store, self.lock = None, None
        self.active_model_id = None
        store.remove_listener(self._on_store_change)
        store.user_provider = None
        if self._owned:
            store.close()
        self._owned = True
        if lock is not None:
            lock.release()

    # --- the active model ----------------------------------------------------------------
    def _stored_active_model(self) -> int | None:
        store = self.store
        if store is None:
            return None
        value = store.setting(ACTIVE_MODEL_KEY)
        try:
            model_id = int(value) if value is not None else None
        except ValueError:
            return None
        if model_id is not None and model_id not in {m.id for m in store.models()}:
            return None  # deleted since
        return model_id

    def set_active_model(self, model_id: int | None) -> None:
        """Make ``model_id`` (a model of the project, or None) the one whose predictions are
        shown, and keep that choice in the project."""
        if model_id == self.active_model_id:
            return
        self.active_model_id = model_id
        store = self.store
        if store is not None and not store.readonly:
            store.set_setting(ACTIVE_MODEL_KEY, None if model_id is None else str(model_id))
        if self.image_id is not None:
            self.cells.begin_load(self.image_id, model_id)
            self.events.reload_needed.emit()
        self.events.active_model.emit(model_id)

    # --- the current image ---------------------------------------------------------------
    def set_image(self, image_id: int | None) -> None:
        """Show another image: :attr:`cells` empties and ``reload_needed`` asks for its cells."""
        if image_id == self.image_id:
            return
        self.image_id = image_id
        if image_id is None:
            self.cells.clear()
        else:
            self.cells.begin_load(image_id, self.active_model_id)
        self.events.image.emit(image_id)
        if image_id is not None:
            self.events.reload_needed.emit()

    def load_request(self) -> LoadRequest | None:
        """What to read for the current image (in the background), or None."""
        if self.store is None or self.image_id is None:
            return None
        return LoadRequest(str(self.store.path), self.image_id, self.active_model_id,
                           self.cells.generation)

    def load_now(self) -> None:
        """Read the current image's cells on this thread (small images, scripts, tests)."""
        if self.store is None or self.image_id is None:
            return
        self.cells.begin_load(self.image_id, self.active_model_id)
        self.cells.replace(self.store.image_columns(self.image_id, self.active_model_id))

    def loaded(self, request: LoadRequest, columns,
               index_of_id: dict[str, int] | None = None) -> bool:
        """A background load finished: show it if it is still what is wanted (False: stale).
        ``index_of_id``: the worker's id → position map (see ``image_cells.index_ids``)."""
        if (self.store is None or request.generation != self.cells.generation
                or request.image_id != self.image_id
                or request.project_path != str(self.store.path)):
            return False
        self.cells.replace(columns, self.store, index_of_id)
        return True

    # --- changes -------------------------------------------------------------------------
    def _on_store_change(self, event: ChangeEvent) -> None:
        store = self.store
        if store is None:
            return
        if "models" in event.kinds and self.active_model_id is not None \
                and self.active_model_id not in {m.id for m in store.models()}:
            self.set_active_model(None)
        if self.cells.apply_store_change(store, event):
            self.cells.begin_load(self.image_id, self.active_model_id)
            self.events.reload_needed.emit()
        self.events.store_changed.emit(event)
