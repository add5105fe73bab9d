"""Quoting what an input file said inside an error message, briefly.

An importer's message names the value it refuses; a hostile value can be a 5,000-digit number, a
megabyte of text or a list nested a thousand deep, whose plain ``repr`` is as long as the file
(or raises ``RecursionError``). ``brief`` quotes the start and says how long the rest was.
"""

from __future__ import annotations

import reprlib

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = 60
_REPR.maxlong = 40
_REPR.maxother = 60
for _name in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset"):
    setattr(_REPR, _name, 6)


def brief(value: object) -> str:
    """``repr(value)``, shortened (``...`` where parts were left out); never raises for the
    values JSON and CSV parsers make."""
    if isinstance(value, str) and len(value) > 60:
        return f"{value[:40]!r}... ({len(value):,} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        digits = len(str(abs(value))) if value.bit_length() < 14_000 else None
        size = f"{digits:,} digits" if digits is not None else f"{value.bit_length():,} bits"
        return f"an integer of {size}"
    return _REPR.repr(value)
