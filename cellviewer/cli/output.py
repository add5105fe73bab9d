"""Where a headless command's progress goes (``../shared/design/cli.md``): JSON lines on stdout
in the trainer's protocol shape with ``--json``, else text on stderr (on a terminal, drawn over
the line before)."""

from __future__ import annotations

import sys
from typing import Any


class Output:
    """``event`` writes a protocol line (``--json`` only); ``say`` a message (text only)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.tty = sys.stderr.isatty()

    def event(self, event: str, **fields: Any) -> None:
        if self.as_json:
            from trainer.formats.protocol import encode_event

            print(encode_event(event, **fields), flush=True)

    def say(self, text: str) -> None:
        if not self.as_json:
            if self.tty:
                sys.stderr.write("\r\x1b[K")
            print(text, file=sys.stderr, flush=True)
