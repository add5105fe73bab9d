"""The trainer's command line: ``python -m trainer COMMAND`` or ``cellviewer-train COMMAND``.

Each command lives in a function ``cmd_<name>(args) -> int`` registered in ``COMMANDS`` with
the function that adds its arguments; heavy imports happen inside the command, so ``--help`` is
instant.

A command line that does not parse exits with code 2, the usage on stderr and, for a program
reading stdout (not a terminal), the protocol's ``error`` event of kind ``bad-arguments``: a
reader of the trainer's output learns why it ended from one place, whatever the failure.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable
from typing import NoReturn

from trainer.formats.protocol import ErrorKind, encode_event

CommandFn = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], CommandFn]] = {}


def command(name: str, help: str, add_args: Callable[[argparse.ArgumentParser], None]):
    """Register ``fn`` as the CLI command ``name``."""

    def wrap(fn: CommandFn) -> CommandFn:
        if name in COMMANDS:
            raise ValueError(f"trainer CLI command {name!r} is defined twice")
        COMMANDS[name] = (help, add_args, fn)
        return fn

    return wrap


def _no_args(p: argparse.ArgumentParser) -> None:
    pass


def emit_error_event(kind: ErrorKind, message: str) -> None:
    """The protocol's ``error`` event on stdout, for a program reading it (a terminal gets the
    message on stderr only)."""
    if sys.stdout.isatty():
        return
    sys.stdout.write(encode_event("error", kind=kind, message=message, t=time.time()) + "\n")
    sys.stdout.flush()


class ProtocolArgumentParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are also reported as an ``error`` event
    (``bad-arguments``) before it exits with code 2; its sub-parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        emit_error_event(ErrorKind.BAD_ARGUMENTS,
                         f"{self.prog}: {message} (see {self.prog} --help)")
        raise SystemExit(2)


@command("version", "print the trainer's version and torch's", _no_args)
def cmd_version(args: argparse.Namespace) -> int:
    import torch

    from trainer import __version__

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    print(f"trainer {__version__}, torch {torch.__version__}, {cuda}")
    return 0


# Each area of the trainer registers its commands in a module of its own (one writer per file).
COMMAND_MODULES = ["trainer.data.commands", "trainer.models.commands", "trainer.engine.commands",
                   "trainer.engine.onnx_commands", "trainer.sweep.commands",
                   "trainer.detect.commands"]


def _load_command_modules() -> None:
    for name in COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):  # a real missing dependency
                raise


def build_parser() -> argparse.ArgumentParser:
    _load_command_modules()
    parser = ProtocolArgumentParser(
        prog="python -m trainer",
        description="CellViewer's trainer: sample, train, evaluate and predict 40x40 cell patches.",
    )
    from trainer import __version__

    # --version on both entry points (../shared/design/cli.md); the `version` command also
    # names torch and the device, which needs torch imported
    parser.add_argument("--version", action="version", version=f"trainer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_args, _) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not args.command:
        parser.print_help()
        return 0
    return COMMANDS[args.command][2](args)


if __name__ == "__main__":
    raise SystemExit(main())
