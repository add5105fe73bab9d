"""Running ``python -m trainer train`` from a benchmark script: its progress lines parsed with
the protocol's own parser, and a clean ``stop`` once a wall-clock budget is spent (the run then
writes its model files and reports why it stopped). Shared by ``crc_recipe.py`` and
``bench_recipe_time.py``; not a benchmark itself."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from trainer.formats.protocol import STOP_COMMAND, parse_line


def run_trainer(cmd: list[str], cwd: Path, budget_s: float = 1e9, *, stderr=None,
                on_event: Callable[[dict, float], None] | None = None) -> dict:
    """Run ``cmd`` (a trainer ``train`` command); ``on_event(event, seconds since start)`` for
    every event but the batch heartbeats. Returns ``events`` (those events), ``wall_s``,
    ``returncode`` and ``stop_sent`` (the budget ran out)."""
    t0 = time.monotonic()
    events: list[dict] = []
    stop_sent = False
    with subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=stderr, text=True, bufsize=1) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        for line in proc.stdout:
            event = parse_line(line)
            if event is None:
                continue
            if event["event"] != "batch":
                events.append(event)
                if on_event is not None:
                    on_event(event, time.monotonic() - t0)
            if not stop_sent and time.monotonic() - t0 > budget_s:
                proc.stdin.write(STOP_COMMAND + "\n")
                proc.stdin.flush()
                stop_sent = True
        proc.wait()
    return {"events": events, "wall_s": time.monotonic() - t0, "returncode": proc.returncode,
            "stop_sent": stop_sent}
