"""Opening the files an import reads, refusing anything that is not a regular file.

A FIFO named like ``points.csv`` would block ``open()`` until some other program writes to it
(for ever, and uninterruptibly, from the app's point of view); a device such as ``/dev/zero``
would be read without end. So the importers look at what a path is before they read it: the
path is ``stat``-ed first, then opened without blocking (``O_NONBLOCK``, where the system has
it) and checked again on the open descriptor, so a file swapped in between cannot slip through.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from cellviewer.core.store import ProjectError

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def not_regular(mode: int) -> str | None:
    """Why a file of this ``st_mode`` cannot be read as an import (None: it can)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    kind = next((name for test, name in _KINDS if test(mode)), "not a plain file")
    return f"is not a regular file ({kind})"


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file, in words that follow its name (None: it can);
    asks the file system without opening anything, so it never blocks."""
    try:
        return not_regular(os.stat(path).st_mode)
    except FileNotFoundError:
        return "not found"
    except ValueError:  # an embedded NUL character
        return "has a NUL character in its name"
    except OSError as e:  # a name too long, a folder that cannot be entered, ...
        return f"cannot be read ({e.strerror})"


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading in binary; ``ProjectError`` naming it when it is missing,
    unreadable or not a regular file (a FIFO, a device, a folder, a socket)."""
    problem = file_problem(path)
    if problem == "not found":
        raise ProjectError(f"{path}: no such file")
    if problem is not None:
        raise ProjectError(f"{path}: {problem}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as e:
        raise ProjectError(f"{path}: no such file") from e
    except OSError as e:
        raise ProjectError(f"{path}: cannot read ({e.strerror})") from e
    try:
        problem = not_regular(os.fstat(fd).st_mode)  # what was opened, not what was asked
        if problem is not None:
            raise ProjectError(f"{path}: {problem}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # ordinary reads again (a no-op for regular files)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
