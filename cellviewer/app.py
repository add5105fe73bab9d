"""Command-line entry point: ``cellviewer [PROJECT] [--demo] [--selftest]`` opens the desktop
app; ``cellviewer COMMAND …`` (a first word that is a command's name, see
:mod:`cellviewer.cli`) runs a headless command instead, without Qt.

Kept free of heavy imports: Qt is imported only once we know a window is wanted, and torch,
timm and pandas never on this path, so the window appears fast.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cellviewer",
        description="CellViewer: classify single cells in histopathology images.",
    )
    from cellviewer import __version__

    p.add_argument("--version", action="version", version=f"cellviewer {__version__}")
    p.add_argument("project", nargs="?", help="a project file (.cvproj) or an image to open")
    p.add_argument("--demo", action="store_true", help="open the bundled demo project")
    p.add_argument(
        "--selftest",
        action="store_true",
        help="open the main window offscreen on the demo project, check it, and exit 0",
    )
    p.add_argument(
        "--screenshot",
        metavar="PNG",
        help="with --selftest: also save a screenshot of the main window to PNG",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # A frozen app has no `python -m trainer`: the GUI launches itself with --run-trainer.
    if argv[:1] == ["--run-trainer"]:
        from trainer.cli import main as trainer_main

        return trainer_main(argv[1:])
    from cellviewer.cli.main import is_command

    if is_command(argv):
        from cellviewer.cli.main import main as cli_main

        return cli_main(argv)
    args = build_parser().parse_args(argv)
    from cellviewer.ui.application import run_app, selftest

    if args.selftest:
        return selftest(screenshot=args.screenshot)
    return run_app(project=args.project, demo=args.demo)


if __name__ == "__main__":
    raise SystemExit(main())
