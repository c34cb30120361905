"""`run` freezes the start-up heap out of the garbage collector's full collections, and
spaces those out."""

from __future__ import annotations

import gc

from homeserver.cli import FULL_COLLECTION_EVERY, freeze_startup_heap, space_full_collections


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


def test_a_served_process_collects_its_oldest_generation_less_often() -> None:
    before = gc.get_threshold()
    try:
        space_full_collections()
        young, middle, oldest = gc.get_threshold()
        assert (young, middle) == before[:2]  # the young generations as Python sets them
        assert oldest == FULL_COLLECTION_EVERY > before[2]
    finally:
        gc.set_threshold(*before)
