"""Which destination servers get a label of their own on the per-destination metrics.

Every label value is a time series Prometheus keeps, and destination names are chosen by
whoever makes us talk to a server (a to-device message to two thousand made-up servers made
four thousand series). So at most ``limit`` destinations have their own label, the first ones
to ask for one (after a restart, those that accepted a transaction before go first); every
other destination is counted under ``"other"``. A label is held until it is released (its
destination expired), so a destination's series never change names under it.
"""

from __future__ import annotations

OTHER = "other"


class DestinationLabels:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._own: set[str] = set()

    def label(self, destination: str) -> str:
        """The destination's label: its own name if it holds one or a slot is free (it then
        keeps it), else ``"other"``."""
        if destination in self._own:
            return destination
        if len(self._own) < self.limit and destination != OTHER:
            self._own.add(destination)
            return destination
        return OTHER

    def release(self, destination: str) -> bool:
        """Free the destination's own label, if it held one (True), for another to take."""
        if destination not in self._own:
            return False
        self._own.discard(destination)
        return True
