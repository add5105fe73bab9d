"""The ``models`` command of the trainer's CLI."""

from __future__ import annotations

import argparse
import json

from trainer.cli import command


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-classes", type=int, default=16,
                   help="classes of the head the counts include (default 16, as in the study)")
    p.add_argument("--kind", choices=("scratch", "foundation"), help="only models of this kind")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


@command("models", "list the models with their parameters, size and the study's defaults", _args)
def cmd_models(args: argparse.Namespace) -> int:
    from trainer.models.summary import format_rows, model_rows

    if args.num_classes < 1:
        raise SystemExit("--num-classes must be at least 1")
    rows = model_rows(args.num_classes, args.kind)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(format_rows(rows, args.num_classes))
    return 0
