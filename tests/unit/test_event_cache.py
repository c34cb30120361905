"""The event cache is bounded by the bytes of its events' JSON as well as by their number."""

from __future__ import annotations

from homeserver.services.event_cache import EventCache


def pdu(n: int) -> dict[str, object]:
    return {"n": n}


def test_least_recently_used_go_once_the_bytes_pass_the_bound() -> None:
    cache = EventCache(max_bytes=200_000)
    for n in range(3):
        cache.put(f"${n}", pdu(n), 63_000)
    assert cache.get("$0") == pdu(0)  # now the most recently used
    cache.put("$3", pdu(3), 63_000)
    assert (len(cache), cache.bytes) == (3, 189_000)
    assert cache.get("$1") is None and cache.get("$0") == pdu(0)


def test_one_event_over_the_bound_is_held_alone_and_entries_bound_too() -> None:
    cache = EventCache(max_bytes=100)
    cache.put("$a", pdu(1), 10)
    cache.put("$huge", pdu(2), 1_000)
    assert (len(cache), cache.bytes) == (1, 1_000)
    cache = EventCache(max_bytes=10**9, max_entries=2)
    for n in range(3):
        cache.put(f"${n}", pdu(n), 1)
    assert (len(cache), cache.get("$0")) == (2, None)


def test_putting_again_discard_and_clear_keep_the_count() -> None:
    cache = EventCache(max_bytes=1_000)
    cache.put("$a", pdu(1), 300)
    cache.put("$a", pdu(2), 100)  # a redacted copy replaces the original
    cache.put("$b", pdu(3), 50)
    assert cache.bytes == 150
    generation = cache.generation
    cache.discard("$a")
    assert (cache.bytes, cache.get("$a"), cache.generation) == (50, None, generation + 1)
    cache.clear()
    assert (len(cache), cache.bytes) == (0, 0)
