"""`run` freezes the start-up heap out of the garbage collector's full collections."""

from __future__ import annotations

import gc

from homeserver.cli import freeze_startup_heap


def test_what_is_alive_at_start_up_is_frozen_and_garbage_is_not() -> None:
    kept = [{"n": n} for n in range(1000)]  # tracked objects a started server holds
    garbage: list[object] = []
    garbage.append(garbage)  # a cycle only a collection frees
    del garbage
    gc.unfreeze()
    try:
        freeze_startup_heap()
        frozen = gc.get_freeze_count()
        assert frozen >= len(kept)
        assert gc.collect() == 0  # the cycle went before the freeze, not into it
    finally:
        gc.unfreeze()
