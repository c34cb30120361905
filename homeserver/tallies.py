"""Metrics that the hot paths update with one attribute write, read when /metrics is scraped.

prometheus_client's own counters and gauges take a lock on every update and find a labelled
child by a locked dictionary lookup. On the paths that run per event or per cache lookup (the
send path is benchmarked) that is most of their cost, so these paths bind a `Tally` once (at
construction or import) and do `tally.value += 1`: the event loop's thread is the only writer.
A `TallyFamily` is a collector that reads every tally of one family at scrape time, in the
exposition's thread, where reading a number is safe (the GIL), and copies its children before
iterating so that a child added meanwhile does not disturb it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class Tally:
    """One labelled series' value; only the event loop writes it."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0


class TallyFamily(Collector):
    """A counter or gauge family whose series are `Tally`s, registered on creation."""

    def __init__(
        self, name: str, documentation: str, labelnames: tuple[str, ...],
        kind: Literal["counter", "gauge"],
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.kind = kind
        self._children: dict[tuple[str, ...], Tally] = {}
        REGISTRY.register(self)

    def child(self, *labels: str) -> Tally:
        """The series of these label values, made at 0 on first use (bind it once, keep it)."""
        assert len(labels) == len(self.labelnames), (self.name, labels)
        tally = self._children.get(labels)
        if tally is None:
            tally = self._children[labels] = Tally()
        return tally

    def _family(self) -> CounterMetricFamily | GaugeMetricFamily:
        family = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        return family(self.name, self.documentation, labels=self.labelnames)

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for labels, tally in self._children.copy().items():
            family.add_metric(labels, tally.value)
        yield family
