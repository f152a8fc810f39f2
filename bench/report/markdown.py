"""Markdown rendering of comparison tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone

import pandas as pd

from bench.records import RunRecord
from bench.report.table import Column, GroupTable, machines_of


def _fmt(value: object, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _delta(value: object, col: Column) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    assert isinstance(value, float)
    if col.delta == "rel":
        return f" ({value:+.0f}%)" if abs(value) >= 0.5 else " (±0%)"
    return f" ({value:+.{col.digits}f})"


def cell(row: pd.Series, col: Column) -> str:
    """One formatted cell: value, and its delta against the baseline when there is one."""
    text = _fmt(row.get(col.key), col.digits)
    if col.delta and f"{col.key}.delta" in row and row["compressor"] != "baseline":
        text += _delta(row.get(f"{col.key}.delta"), col)
    return text


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(table: GroupTable) -> str:
    """A GroupTable as a Markdown section."""
    header = ["compressor", "status", *[c.title for c in table.columns]]
    lines = [
        f"## {_escape(table.title)}",
        "",
        f"Machine: {_escape(table.machine)}. Deltas in parentheses are against `{table.baseline}`"
        " (accuracy: points; others: percent)."
        if table.baseline
        else f"Machine: {_escape(table.machine)}. No baseline run in this group: no deltas.",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---", "---"] + ["---:"] * len(table.columns)) + " |",
    ]
    for _, row in table.rows.iterrows():
        cells = [_escape(str(row["compressor"])), str(row["status"])]
        cells += [cell(row, c) if row["status"] == "ok" else "–" for c in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    if table.notes:
        lines += ["", "Notes:", *[f"- {_escape(n)}" for n in table.notes]]
    if table.failures:
        lines += ["", "Failed or skipped:", *[f"- {_escape(f)}" for f in table.failures]]
    return "\n".join(lines) + "\n"


def render(tables: Sequence[GroupTable], records: Sequence[RunRecord], generated: datetime | None = None) -> str:
    """The whole Markdown report."""
    when = (generated or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    machines = machines_of(list(records))
    libs = next((r.environment.libraries for r in records if r.environment), {})
    commits = sorted({r.environment.git_commit[:10] for r in records if r.environment and r.environment.git_commit})
    out = [
        "# bench report",
        "",
        f"Generated at {when} from {len(records)} records.",
        "",
        f"- Machine{'s' if len(machines) > 1 else ''}: {'; '.join(machines) or 'unknown'}",
        "- Libraries: "
        + ", ".join(f"{k} {v}" for k, v in libs.items() if k in ("torch", "transformers", "onnxruntime", "bench")),
        f"- bench commit{'s' if len(commits) > 1 else ''}: {', '.join(commits) or 'unknown'}",
        "- Latency: p50/p90/p99 of the timed calls after warm-up; size: bytes as saved;"
        " peak RSS: sampled while timing and evaluating.",
    ]
    if len(machines) > 1:
        out += [
            "",
            "> **Warning:** these records come from more than one machine. Each table holds one machine's runs;"
            " do not compare figures across tables of different machines.",
        ]
    out.append("")
    for table in tables:
        out += [render_table(table)]
    return "\n".join(out)
