"""Dispatch of ``cellviewer COMMAND …``: one sub-parser per command, one module per command.

Conventions (``../shared/design/cli.md``): ``--help`` on each command and ``--version``; exit
codes 0 done, 1 error (nothing written), 2 usage, 3 a batch finished with failed items; messages
name the file and the cause, never a traceback for bad input; commands that change a project
need a user (``--user``, else ``CELLVIEWER_USER``, else refuse:
:func:`cellviewer.core.project.users.
headless_user`).

Adding a command: a module in this package with ``add_parser(subparsers)`` (which sets
``func`` to a function of the parsed arguments returning the exit code), listed in COMMANDS.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cellviewer import __version__
from cellviewer.cli import (
    agreement_cmd,
    copy_for_cmd,
    detect_cmd,
    export_cmd,
    import_cmd,
    info,
    merge_cmd,
    predict_cmd,
)

#: the command modules, in the order ``--help`` lists them
COMMANDS = {"import": import_cmd, "export": export_cmd, "info": info, "detect": detect_cmd,
            "predict": predict_cmd, "copy-for": copy_for_cmd, "merge": merge_cmd,
            "annotator-agreement": agreement_cmd}

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


class CommandError(Exception):
    """Bad input or a refused action: the message names the file and the cause (exit 1)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cellviewer",
        description="CellViewer's headless commands (without a command: the desktop app).")
    parser.add_argument("--version", action="version", version=f"cellviewer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def command_invocation(args: Sequence[str]) -> tuple[str, list[str]]:
    """Program and arguments that run ``cellviewer ARGS`` as a child process: the same Python
    (``-u -m cellviewer``), or a frozen app itself (its first argument picks the command)."""
    if getattr(sys, "frozen", False):
        return sys.executable, list(args)
    return sys.executable, ["-u", "-m", "cellviewer", *args]


def is_command(argv: Sequence[str]) -> bool:
    """Whether ``argv`` asks for a headless command (its first word is a command's name). A
    project file that happens to have such a name opens with a path: ``cellviewer ./info``."""
    return bool(argv) and argv[0] in COMMANDS


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.func(args))
    except CommandError as exc:
        print(f"cellviewer {args.command}: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
