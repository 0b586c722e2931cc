"""Keeping Python's cyclic garbage collector from stopping the event loop while a big config loads."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_NO_FULL_PASS = 1_000_000_000  # young-generation passes before a full one: never, in practice


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No full garbage-collection pass while a config is loaded and applied; afterwards everything
    that lives is frozen (spared the collector's passes from then on).

    A 40,000-app config is hundreds of thousands of objects. While they are being made, each full
    pass of the collector walks the whole heap (100-250 ms, holding the GIL, so the event loop and
    its probes stop), again and again as the heap grows. The young generations are still collected
    as usual (a millisecond each), so short-lived cycles go as they always do. Frozen objects are
    freed as before when their last reference goes (the loader makes no reference cycles).
    """
    threshold = gc.get_threshold()
    if not gc.isenabled() or threshold[2] == _NO_FULL_PASS:  # disabled, or already inside one
        yield
        return
    gc.set_threshold(threshold[0], threshold[1], _NO_FULL_PASS)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.freeze()
