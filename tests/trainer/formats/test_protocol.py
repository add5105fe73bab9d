"""The progress protocol: what the trainer writes and the GUI reads, through the same code."""

import json
import math

import pytest

from trainer.formats.protocol import (
    PROTOCOL_VERSION,
    LineBuffer,
    StopReason,
    encode_event,
    parse_line,
    read_events,
)


def test_encode_is_one_versioned_json_line():
    line = encode_event("epoch", epoch=3, val_acc=0.5, reason=StopReason.EARLY_STOP)
    assert "\n" not in line
    obj = json.loads(line)
    assert obj == {"v": PROTOCOL_VERSION, "event": "epoch", "epoch": 3, "val_acc": 0.5,
                   "reason": "early-stop"}


def test_non_finite_numbers_become_null_so_every_reader_parses_them():
    obj = parse_line(encode_event("batch", train_loss=math.nan, eta_s=math.inf,
                                  nested={"x": [1.0, -math.inf]}))
    assert obj["train_loss"] is None and obj["eta_s"] is None
    assert obj["nested"] == {"x": [1.0, None]}


def test_reserved_field_names_are_refused():
    with pytest.raises(ValueError, match="reserved"):
        encode_event("epoch", v=2)


@pytest.mark.parametrize("line", ["", "   ", "hello", "[1, 2]", '{"v": 1}', '{"event": 3}',
                                  '{"event": "epoch"', "Warning: something {odd}"])
def test_parse_line_rejects_what_is_not_an_event(line):
    assert parse_line(line) is None


def test_parse_line_accepts_bytes_and_unknown_events():
    assert parse_line(b'{"v":1,"event":"future-thing","x":1}\r\n')["x"] == 1


def test_line_buffer_reassembles_lines_split_anywhere():
    lines = [encode_event("started", classes=["épithélial", "fibroblast"]),
             "a log line that leaked to stdout",
             encode_event("epoch", epoch=1, val_acc=0.75),
             encode_event("finished", model_path="/runs/a/best.cvmodel")]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    for cut in (1, 2, 3, 7, 50):  # chunk sizes that split lines and multi-byte characters
        buf = LineBuffer()
        events = []
        for i in range(0, len(data), cut):
            events += buf.feed(data[i:i + cut])
        events += buf.flush()
        assert [e["event"] for e in events] == ["started", "epoch", "finished"], cut
        assert events[0]["classes"][0] == "épithélial"
        assert buf.other_lines == ["a log line that leaked to stdout"]


def test_line_buffer_keeps_a_partial_line_until_it_is_complete():
    buf = LineBuffer()
    line = encode_event("epoch", epoch=2)
    assert buf.feed(line[:10]) == []
    assert buf.feed(line[10:]) == []  # no newline yet: the line may go on
    assert buf.feed("\n")[0]["epoch"] == 2
    assert buf.feed(line) == []
    assert buf.flush()[0]["epoch"] == 2  # the process ended without a final newline
    assert buf.flush() == []


def test_read_events_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "events.jsonl"
    good = encode_event("epoch", epoch=1)
    path.write_text(good + "\n" + good[:15])
    assert [e["epoch"] for e in read_events(path)] == [1]


def test_protocol_and_config_import_only_the_standard_library():
    """The GUI imports these two on its start-up path: no torch, numpy or other packages."""
    import subprocess
    import sys
    from pathlib import Path

    probe = ("import sys; import trainer.formats.protocol, trainer.formats.config; "
             "print(','.join(sorted(m for m in ('torch', 'numpy', 'PIL', 'safetensors') "
             "if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[3], timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
