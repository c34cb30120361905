"""At most N destinations get their own metric label; the rest are "other"."""

from __future__ import annotations

from federation.metric_labels import OTHER, DestinationLabels


def test_the_first_destinations_keep_their_own_label_and_the_rest_are_other() -> None:
    labels = DestinationLabels(2)
    assert [labels.label(d) for d in ("a", "b", "c", "a", "b", "c")] == [
        "a", "b", OTHER, "a", "b", OTHER,
    ]


def test_a_released_label_goes_to_the_next_destination_that_asks() -> None:
    labels = DestinationLabels(1)
    assert (labels.label("a"), labels.label("b")) == ("a", OTHER)
    assert labels.release("a") and not labels.release("a") and not labels.release("b")
    assert (labels.label("b"), labels.label("a")) == ("b", OTHER)


def test_no_label_at_all_and_a_destination_named_other() -> None:
    assert DestinationLabels(0).label("a") == OTHER
    labels = DestinationLabels(5)
    assert labels.label(OTHER) == OTHER
    assert labels.label("a") == "a"
