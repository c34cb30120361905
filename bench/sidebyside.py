"""The side-by-side table of a comparison run: Synapse's and Moot's JSON results, the ratio
Moot / Synapse of each figure, and the issue's target where it sets one.

`bench/compare.sh` (one server, `bench/load.py`), `bench/compare-federation.sh` (two servers,
`bench/federation.py`) and `bench/compare-sliding.sh` (sliding sync: each server's result is
{"sliding": load.py --receive sliding, "first": sliding_first.py, "sync": load.py or null}) all
print their table with it:

    python bench/sidebyside.py single|federation|sliding SYNAPSE.json MOOT.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Row:
    """One figure: where it is in a result, and the target on Moot / Synapse, if any. With
    `within`, the figure is compared with another figure of the same server instead (the
    ratio is path / within), e.g. sliding sync's fan-out against /sync's."""

    name: str
    path: Path
    op: str | None = None  # ">=" or "<="
    target: float | None = None
    within: Path | None = None


def single_faults(r: dict[str, Any]) -> dict[str, int]:
    return {"lost": r["lost"], "duplicates": r["duplicates"], "errors": r["send"]["errors"]}


def federation_faults(r: dict[str, Any]) -> dict[str, int]:
    return {
        "lost_cross": r["lost"]["cross"], "lost_local": r["lost"]["local"],
        "duplicates": r["duplicates"], "errors": r["send"]["errors"],
    }


def sliding_faults(r: dict[str, Any]) -> dict[str, int]:
    """Both group-chat runs' faults added up (the JSON above the table has each)."""
    runs = [run for run in (r["sliding"], r.get("sync")) if run]
    return {
        "lost": sum(run["lost"] for run in runs),
        "duplicates": sum(run["duplicates"] for run in runs),
        "errors": sum(run["send"]["errors"] for run in runs),
    }


LAYOUTS: dict[str, tuple[list[Row], Callable[[dict[str, Any]], dict[str, int]]]] = {
    "single": ([
        Row("send throughput (msgs/s)", ("send", "msgs_per_s"), ">=", 10.0),
        Row("fan-out p99 (ms)", ("fanout", "p99_ms"), "<=", 0.1),
        Row("255 joins total (s)", ("joins", "total_s"), "<=", 0.2),
        Row("peak RSS (MB)", ("peak_rss_mb",), "<=", 1.0),
    ], single_faults),
    "federation": ([
        Row("cross-server fan-out p99 (ms)", ("cross_fanout", "p99_ms"), "<=", 0.1),
        Row("cross-server fan-out p50 (ms)", ("cross_fanout", "p50_ms")),
        Row("cross-server fan-out max (ms)", ("cross_fanout", "max_ms")),
        Row("  p99 server 1 -> 2 (ms)", ("cross_fanout", "1_to_2", "p99_ms")),
        Row("  p99 server 2 -> 1 (ms)", ("cross_fanout", "2_to_1", "p99_ms")),
        Row("local fan-out p99 (ms)", ("local_fanout", "p99_ms")),
        Row("send rate, both servers (msgs/s)", ("send", "msgs_per_s")),
        Row("send request p99 (ms)", ("send", "p99_ms")),
        Row("remote join (ms)", ("joins", "remote_first_ms")),
        Row("joins on server 2 after it (s)", ("joins", "local_on_2", "total_s")),
        Row("joins federated, settled (s)", ("joins", "settled_s")),
        Row("peak RSS server 1 (MB)", ("rss", 0, "peak_rss_mb")),
        Row("peak RSS server 2 (MB)", ("rss", 1, "peak_rss_mb")),
    ], federation_faults),
    "sliding": ([
        Row("fan-out p99, sliding sync (ms)", ("sliding", "fanout", "p99_ms"), "<=", 0.1),
        Row("  against the same server's /sync", ("sliding", "fanout", "p99_ms"), "<=", 1.1,
            within=("sync", "fanout", "p99_ms")),
        Row("fan-out p99, /sync (ms)", ("sync", "fanout", "p99_ms")),
        Row("fan-out p50, sliding sync (ms)", ("sliding", "fanout", "p50_ms")),
        Row("fan-out p50, /sync (ms)", ("sync", "fanout", "p50_ms")),
        Row("sliding responses for the deliveries", ("sliding", "syncs")),
        Row("first response p50 (ms)", ("first", "first_response", "p50_ms"), "<=",
            0.2),
        Row("first response p99 (ms)", ("first", "first_response", "p99_ms"), "<=",
            0.2),
        Row("first response, the cold one (ms)", ("first", "first_response", "cold_ms")),
        Row("first response, new device, p50 (ms)",
            ("first", "idle", "new_device_first_ms", "p50_ms")),
        Row("first response, new device, p99 (ms)",
            ("first", "idle", "new_device_first_ms", "p99_ms")),
        Row("memory per idle connection (kB)", ("first", "idle", "per_connection_kb")),
        Row("send throughput, sliding run (msgs/s)", ("sliding", "send", "msgs_per_s")),
        Row("creating the rooms (s)", ("first", "setup", "create_s")),
    ], sliding_faults),
}


def lookup(result: Any, path: Path) -> Any:
    for key in path:
        if isinstance(result, dict) and isinstance(key, str):
            result = result.get(key)
        elif isinstance(result, list) and isinstance(key, int) and key < len(result):
            result = result[key]
        else:
            return None
    return result


def ratio(synapse: Any, moot: Any) -> float | None:
    numbers = all(isinstance(v, int | float) for v in (synapse, moot))
    return moot / synapse if numbers and synapse else None


def render(layout: str, synapse: dict[str, Any], moot: dict[str, Any]) -> list[str]:
    rows, faults_of = LAYOUTS[layout]
    cells: list[tuple[str, str, str, str, str, str]] = []
    verdicts: list[bool] = []
    for row in rows:
        s, m = lookup(synapse, row.path), lookup(moot, row.path)
        if row.within is not None:  # each server against itself: the cells are the ratios
            s, m = ratio(lookup(synapse, row.within), s), ratio(lookup(moot, row.within), m)
            r = m
            s, m = (f"{v:.3f}x" if v is not None else None for v in (s, m))
        else:
            r = ratio(s, m)
        verdict = ""
        if row.target is not None:
            met = r is not None and (r >= row.target if row.op == ">=" else r <= row.target)
            verdicts.append(met)
            verdict = "met" if met else "NOT MET"
        target = f"{row.op} {row.target}x" if row.target is not None else ""
        shown = f"{r:.3f}x" if r is not None else ""
        cells.append((row.name, str(s), str(m), shown + (" (own)" if row.within and shown else ""),
                      target, verdict))
    moot_faults, synapse_faults = faults_of(moot), faults_of(synapse)
    met = sum(moot_faults.values()) == 0
    verdicts.append(met)
    cells.append(("lost / dup / send errors", str(sum(synapse_faults.values())),
                  str(sum(moot_faults.values())), json.dumps(moot_faults), "= 0",
                  "met" if met else "NOT MET"))
    header = ("figure", "synapse", "moot", "moot/synapse", "target", "")
    return [*table(header, cells), "", f"{sum(verdicts)} of {len(verdicts)} targets met"]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]]


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in LAYOUTS:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as s, open(argv[2]) as m:
        synapse, moot = json.load(s), json.load(m)
    print("\n".join(["", *render(argv[0], synapse, moot)]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
