"""How greenchat-serve sets up Python's garbage collector: for short pauses.

CPython's cycle collector stops the whole process while it walks the tracked
objects of the generations it collects, and a full (generation-2) collection
walks them all. On the benchmark machine that is about 1 µs an object: ~30 ms
for the ~34,000 objects greenchat has once started (modules, functions, the
command table), more with a thousand sessions connected, and every client waits
for it. Yet departed sessions are freed by reference counting
(``Session._unlink``), so full collections find next to nothing: in issue 14's
login storm, 0 objects, after 35-76 ms each.

So, once the server has started:

- ``gc.freeze()``: what start-up made lives as long as the process; the
  collector stops walking it;
- generation 1 is collected every ``MIDDLE_EVERY`` (3) collections of
  generation 0 instead of 10, so each walks fewer objects: a thousand sessions
  set up at once put that many new objects in it, and a collection of it took
  5-15 ms;
- full collections come at most every ``FULL_EVERY`` (300) collections of
  generation 1, about every 900 of generation 0 where CPython's default is 100,
  and still only when what survived into generation 2 since the last one grew
  by a quarter. Short-lived cycles die in the young generations, collected as
  often as before.

Measured with ``benchmarks/results/issue14/gc_pauses.py`` (issue 14, "After the
lane"): no collection over 5 ms in the login storms, where there had been
full collections of 35-76 ms and generation-1 ones of 5-15 ms.
"""

from __future__ import annotations

import gc

__all__ = ["settle_after_start"]

MIDDLE_EVERY = 3  # collections of generation 0 per collection of generation 1
FULL_EVERY = 300  # collections of generation 1 per full collection, at most


def settle_after_start() -> None:
    """Call once, after start-up and before serving clients."""
    young, _, _ = gc.get_threshold()
    gc.collect()  # what start-up left as garbage goes now, not into the frozen set
    gc.freeze()
    gc.set_threshold(young, MIDDLE_EVERY, FULL_EVERY)
