"""The loop ``cellviewer detect`` and ``cellviewer predict`` run over a cohort's shard: one
slide after another through :mod:`cellviewer.core.cohort.scoring`, with progress and a summary.

Progress (``../shared/design/cli.md``): on a terminal one line redrawn in place (slides done and
failed, the slide's share, cells/s, ETA); otherwise a line per slide; with ``--json`` one JSON
object per line on stdout in the trainer's protocol shape: ``started``, ``progress`` (at most
every 0.2 s), ``item-done``, ``item-failed``, ``finished`` (the summary: slides, cells, cells
per class) or ``error``. Exit codes: 0 every slide done, 3 some failed (each listed on stderr
and in ``finished``), 1 nothing to run or every slide failed.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cellviewer.cli.output import Output
from cellviewer.core.cohort import CohortItem, CohortSummary, SlideOutcome

PROGRESS_EVERY_S = 0.2


class CohortReporter(Output):
    """Progress of one shard on stderr (a redrawn line on a terminal) or as JSON lines."""

    def __init__(self, command: str, as_json: bool, summary: CohortSummary) -> None:
        super().__init__(as_json)
        self.command, self.summary = command, summary
        self._last = 0.0

    def progress(self, item: CohortItem, index: int, fraction: float, cells: int) -> None:
        now = time.monotonic()
        if now - self._last < PROGRESS_EVERY_S and fraction < 1.0:
            return
        self._last = now
        s = self.summary
        rate, eta = s.cells_per_s(cells), s.eta_s(fraction)
        self.event("progress", slide=item.name, item=index, items=s.slides,
                   fraction=round(fraction, 4), cells=cells, done=len(s.done),
                   failed=len(s.failed), cells_per_s=round(rate, 1),
                   eta_s=None if eta is None else round(eta, 1))
        if self.tty and not self.as_json:
            sys.stderr.write(f"\r\x1b[K[{s.finished}/{s.slides} slides, {len(s.failed)} failed]"
                             f" {item.key[-24:]} {fraction:4.0%} {cells:,} cells, "
                             f"{rate:,.0f} cells/s, ETA {_clock(eta)}")
            sys.stderr.flush()

    def outcome(self, outcome: SlideOutcome) -> None:
        if outcome.ok:
            self.event("item-done", slide=outcome.name, cells=outcome.cells,
                       classes=outcome.class_counts, skipped=outcome.skipped,
                       elapsed_s=round(outcome.elapsed_s, 3))
            self.say(f"{outcome.name}: {outcome.cells:,} cells"
                     + (" (already done)" if outcome.skipped else
                        f" in {outcome.elapsed_s:.1f} s"))
        else:
            self.event("item-failed", slide=outcome.name, message=outcome.message)
            self.say(f"failed: {outcome.message}")


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def run_cohort(command: str, items: list[CohortItem], out: Path, as_json: bool,
               one: Callable[[CohortItem, Callable[[float, int], None]], SlideOutcome],
               **started: Any) -> int:
    """Run ``one(item, progress)`` over ``items`` (a shard, sorted), report, summarise; the
    exit code."""
    from cellviewer.cli.main import EXIT_OK, EXIT_PARTIAL, CommandError

    summary = CohortSummary(len(items))
    rep = CohortReporter(command, as_json, summary)
    rep.event("started", command=command, slides=len(items), out=str(out), **started)
    if not items:
        rep.say(f"this shard has no slides ({started.get('shard')}); nothing to do")
        rep.event("finished", slides=0, done=0, failed=[], cells=0, classes={},
                  elapsed_s=0.0, cells_per_s=0.0)
        return EXIT_OK
    for index, item in enumerate(items):
        outcome = one(item, lambda f, c, item=item, index=index:
                      rep.progress(item, index, f, c))
        summary.add(outcome)
        rep.outcome(outcome)
    rep.event("finished", slides=len(items), done=len(summary.done),
              failed=[o.name for o in summary.failed], cells=summary.cells,
              classes=summary.class_counts, elapsed_s=round(summary.elapsed_s, 3),
              cells_per_s=round(summary.cells_per_s(), 1))
    for line in summary.lines():
        rep.say(line)
    if len(summary.failed) == len(items):
        message = f"every slide failed; nothing written to {out}"
        rep.event("error", kind="input", message=message)
        for o in summary.failed:
            print(f"  {o.message}", file=sys.stderr)
        raise CommandError(message)
    if summary.failed:
        print(f"cellviewer {command}: {len(summary.failed)} of {len(items)} slides failed:",
              file=sys.stderr)
        for o in summary.failed:
            print(f"  {o.message}", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


def cohort_items(inputs: list[Path], shard_text: str | None) -> tuple[list[CohortItem], str]:
    """The shard's items of the inputs (manifests, projects, images) and the shard as text;
    ``CommandError`` naming a bad input, ``ValueError`` for a bad ``--shard``."""
    from cellviewer.cli.main import CommandError
    from cellviewer.core.cohort import ManifestError, parse_shard, read_inputs, shard

    i, n = parse_shard(shard_text)
    try:
        items = read_inputs(list(inputs))
    except ManifestError as exc:
        raise CommandError(str(exc)) from exc
    return shard(items, i, n), f"{i}/{n}"


def prepare_out(out: Path) -> None:
    """The results folder, made when missing (every shard may make it at once)."""
    from cellviewer.cli.main import CommandError

    if out.exists() and not out.is_dir():
        raise CommandError(f"{out}: is a file; with a manifest or --shard, --out names the "
                           "folder of per-slide results")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"{out}: cannot make the results folder "
                           f"({exc.strerror or exc})") from exc


@contextlib.contextmanager
def error_events(as_json: bool) -> Iterator[None]:
    """A refusal before the run starts (a bad manifest, a model of other classes) is also an
    ``error`` event with ``--json``, as every failure of the protocol is."""
    from cellviewer.cli.main import CommandError

    try:
        yield
    except CommandError as exc:
        if as_json:
            from trainer.formats.protocol import encode_event

            print(encode_event("error", kind="input", message=str(exc)), flush=True)
        raise
