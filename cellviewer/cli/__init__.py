"""The headless commands of CellViewer: ``cellviewer COMMAND …`` (see ``../shared/design/cli.md``
for the table every command follows). Qt-free: a command works on projects, images and slides
through :mod:`cellviewer.core`, and may import the trainer's prediction API lazily."""

from cellviewer.cli.main import COMMANDS, main

__all__ = ["COMMANDS", "main"]
