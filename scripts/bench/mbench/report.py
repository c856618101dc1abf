"""report - medians of the repeats, mailsys / Postfix ratios, Markdown and JSON.

DESCRIPTION
    A Result is one repeat of one cell on one system: each metric a number,
    or None with a reason in `notes`. summarize() takes the median over the
    repeats of each metric (repeats that have no figure are left out; when
    none has one the metric is n/a), and ratio() divides mailsys by
    Postfix. markdown() renders one table row per cell and system plus a
    ratio row, then the reasons for every n/a; to_json() keeps the raw
    repeats as well.

    Latency p50 and p99 are taken per repeat over that repeat's messages
    (nearest rank), then the median over repeats, like every other figure.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field

# metric key -> (column heading, format)
METRICS: dict[str, tuple[str, str]] = {
    "accept_rate": ("accept msg/s", "{:.0f}"),
    "e2e_rate": ("end-to-end msg/s", "{:.0f}"),
    "p50_ms": ("p50 ms", "{:.1f}"),
    "p99_ms": ("p99 ms", "{:.1f}"),
    "pss_mb": ("PSS MB", "{:.1f}"),
    "pss_anon_mb": ("PSS anon+shmem MB", "{:.1f}"),
    "rss_mb": ("RSS MB", "{:.1f}"),
    "cpu_ms_per_msg": ("CPU ms/msg", "{:.2f}"),
}
SYSTEMS = ("postfix", "mailsys")


@dataclass(frozen=True, slots=True)
class Cell:
    size: int          # message payload bytes (smtp-source -l)
    sessions: int      # parallel sessions (smtp-source -s)
    rcpts: int         # recipients per message (smtp-source -r)

    @property
    def label(self) -> str:
        size = f"{self.size // 1024} KB" if self.size % 1024 == 0 else f"{self.size} B"
        return f"{size} × {self.sessions} sess × {self.rcpts} rcpt"


@dataclass(frozen=True, slots=True)
class Result:
    system: str
    cell: Cell
    repeat: int
    messages: int
    metrics: dict[str, float | None]
    notes: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)   # raw figures (seconds, samples, ...)


def percentile(values: list[float], q: float) -> float | None:
    """percentile - nearest-rank q-th percentile (0 < q <= 100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(results: list[Result]) -> dict[tuple[str, Cell], dict[str, float | None]]:
    """summarize - (system, cell) -> metric -> median over its repeats."""
    grouped: dict[tuple[str, Cell], list[Result]] = {}
    for r in results:
        grouped.setdefault((r.system, r.cell), []).append(r)
    return {key: {m: median_or_none([r.metrics.get(m) for r in rs]) for m in METRICS}
            for key, rs in grouped.items()}


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ratio - ours / theirs, None when either is missing or theirs is 0."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def _fmt(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def cells_in_order(results: list[Result]) -> list[Cell]:
    seen: dict[Cell, None] = {}
    for r in results:
        seen.setdefault(r.cell, None)
    return list(seen)


def markdown(results: list[Result], *, header: str = "") -> str:
    """markdown - the table (medians, then mailsys / Postfix) and every n/a reason."""
    summary = summarize(results)
    cols = ["cell", "system"] + [METRICS[m][0] for m in METRICS]
    lines = [header] if header else []
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for cell in cells_in_order(results):
        for system in SYSTEMS:
            row = summary.get((system, cell))
            if row is None:
                continue
            lines.append(f"| {cell.label} | {system} | "
                         + " | ".join(_fmt(row[m], METRICS[m][1]) for m in METRICS) + " |")
        mine, theirs = summary.get(("mailsys", cell)), summary.get(("postfix", cell))
        if mine and theirs:
            lines.append(f"| {cell.label} | **mailsys / postfix** | "
                         + " | ".join(_fmt(ratio(mine[m], theirs[m]), "{:.2f}") for m in METRICS)
                         + " |")
    notes = []
    for r in results:
        for note in r.notes:
            line = f"- {r.system}, {r.cell.label}, repeat {r.repeat}: {note}"
            if line not in notes:
                notes.append(line)
    if notes:
        lines += ["", "Notes (why a figure is n/a, and anything odd):", ""] + notes
    lines += ["", "Medians of the repeats; how each figure is measured: scripts/bench/README.md."]
    return "\n".join(lines) + "\n"


def to_json(results: list[Result], meta: dict) -> dict:
    """to_json - meta, the per-repeat results, the medians and the ratios."""
    summary = summarize(results)
    cells = cells_in_order(results)
    return {
        "meta": meta,
        "metrics": {m: METRICS[m][0] for m in METRICS},
        "results": [{**asdict(r), "cell": asdict(r.cell)} for r in results],
        "medians": [{"system": s, "cell": asdict(c), **summary[(s, c)]}
                    for c in cells for s in SYSTEMS if (s, c) in summary],
        "ratios": [{"cell": asdict(c),
                    **{m: ratio(summary[("mailsys", c)][m], summary[("postfix", c)][m]) for m in METRICS}}
                   for c in cells if ("mailsys", c) in summary and ("postfix", c) in summary],
    }
