"""Bounds on per-server state and on work unknown servers can trigger (federation/bounded.py)."""

from __future__ import annotations

from federation.bounded import LruDict, WindowBudget
from tests.fake_clock import FakeClock


def test_lru_dict_forgets_the_least_recently_used_entry() -> None:
    lru: LruDict[str, int] = LruDict(2)
    lru.set("a", 1)
    lru.set("b", 2)
    assert lru.get("a") == 1  # "a" is now the most recently used
    lru.set("c", 3)
    assert (lru.get("a"), lru.get("b"), lru.get("c"), len(lru)) == (1, None, 3, 2)
    lru.pop("a")
    lru.pop("missing")
    assert (lru.get("a"), len(lru)) == (None, 1)


def test_window_budget_allows_its_limit_per_window() -> None:
    clock = FakeClock()
    budget = WindowBudget(2, 60.0, clock)
    assert [budget.take() for _ in range(3)] == [True, True, False]
    clock.advance(59.0)
    assert not budget.take()
    clock.advance(1.0)
    assert [budget.take() for _ in range(3)] == [True, True, False]
