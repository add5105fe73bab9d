"""Durations as people read them, in one place."""

from __future__ import annotations

import math

import pytest

from cellviewer.core.formatting import NO_DURATION, format_clock, format_duration


@pytest.mark.parametrize(("seconds", "words", "clock"), [
    (0, "0 s", "0:00"), (44.6, "45 s", "0:45"), (59.4, "59 s", "0:59"),
    (60, "1 min 00 s", "1:00"), (185, "3 min 05 s", "3:05"),
    (3599.4, "59 min 59 s", "59:59"), (3600, "1 h 00 min", "1:00:00"),
    (7629, "2 h 07 min", "2:07:09"),
])
def test_durations_in_words_and_as_a_clock(seconds, words, clock):
    assert format_duration(seconds) == words
    assert format_clock(seconds) == clock


@pytest.mark.parametrize("unknown", [None, math.nan, math.inf, -1.0])
def test_an_unknown_duration_is_a_dash(unknown):
    assert format_duration(unknown) == format_clock(unknown) == NO_DURATION == "–"
