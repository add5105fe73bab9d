"""Short garbage-collector pauses for a window that must answer within 50 ms.

CPython's cyclic collector scans every tracked object of the heap on a full (generation 2)
pass, whichever thread triggers it, and every thread waits meanwhile. With PyTorch, Qt's
wrappers and a project loaded, such a pass took 100-150 ms (benchmarks/bench_gui_stalls.py:
the blur-sensitivity queue's longest block fell from 132 ms to 35 ms once the long-lived
objects were frozen). :func:`freeze_long_lived` moves the objects alive now into the permanent
generation, which the collector no longer scans; objects made later are collected as usual.
The window calls it when a burst of long-lived objects has just been made: after its tools are
installed, after a project opened, after a model was loaded (torch imported).
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Stop the collector scanning what is alive now (cheap: no collection is run)."""
    gc.freeze()
