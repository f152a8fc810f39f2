"""Markdown rendering of comparison tables (README.md of a report folder)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from bench.report.document import Document
from bench.report.provenance import header_lines
from bench.report.scaling import SCALING_HEADER, SCALING_LEGEND, Series, scaling_rows
from bench.report.table import Column, GroupTable, extremes
from bench.report.text import plain

LEGEND = (
    "Deltas in parentheses are against the baseline row (accuracy: points; others: percent), with a 95% "
    "bootstrap interval in brackets where one could be computed (accuracy: paired over the evaluation "
    "examples; p50 latency: over the raw samples, and for rows timed in interleaved rounds over rounds and "
    "then samples, paired by round and widened for the few rounds); **n.s.** marks a difference whose "
    "interval contains zero. **Bold**: best in its column; _italic_: worst."
)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_value(value: object, digits: int) -> str:
    if _missing(value):
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def delta_text(row: pd.Series, col: Column) -> str:
    """The delta against the baseline, with its interval and significance, or ''."""
    value = row.get(f"{col.key}.delta")
    if col.delta is None or _missing(value):
        return ""
    assert isinstance(value, float)
    relative = f"{value:+.0f}%" if abs(value) >= 0.5 else "±0%"
    text = relative if col.delta == "rel" else f"{value:+.{col.digits}f}"
    low, high = row.get(f"{col.key}.lo"), row.get(f"{col.key}.hi")
    if not _missing(low) and not _missing(high):
        assert isinstance(low, float) and isinstance(high, float)
        digits = 0 if col.delta == "rel" else col.digits
        text += f" [{low:+.{digits}f}, {high:+.{digits}f}]"
        if low <= 0 <= high:
            text += " n.s."
    return text


def cell(row: pd.Series, col: Column) -> str:
    """One formatted cell: value, and its delta against the baseline when there is one."""
    text = format_value(row.get(col.key), col.digits)
    delta = delta_text(row, col)
    return f"{text} ({delta})" if delta else text


def escape(text: str) -> str:
    """Text safe inside a Markdown table cell or list item (no HTML, no column breaks, no control codes)."""
    text = plain(text)
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|")):
        text = text.replace(char, entity)
    return " ".join(text.split())


def render_table(table: GroupTable) -> str:
    """A GroupTable as a Markdown section."""
    header = ["compressor", "status", "precision", *[c.title for c in table.columns]]
    marks = extremes(table)
    lines = [
        f"## {escape(table.title)}",
        "",
        f"Machine: {escape(table.machine)}. Baseline: `{escape(table.baseline)}`."
        if table.baseline
        else f"Machine: {escape(table.machine)}. No successful baseline run in this group: no deltas.",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---", "---", "---"] + ["---:"] * len(table.columns)) + " |",
    ]
    for _, row in table.rows.iterrows():
        name = str(row["compressor"])
        cells = [escape(name), str(row["status"]), escape(str(row["precision"]))]
        for col in table.columns:
            if row["status"] != "ok":
                cells.append("–")
                continue
            text = cell(row, col)
            best, worst = marks.get(col.key, ("", ""))
            cells.append(f"**{text}**" if name == best else f"_{text}_" if name == worst else text)
        lines.append("| " + " | ".join(cells) + " |")
    if table.failures:
        lines += ["", "Failed or skipped:", *[f"- {escape(f)}" for f in table.failures]]
    if table.notes:
        lines += ["", "Flags and notes:", *[f"- {escape(n)}" for n in table.notes]]
    return "\n".join(lines) + "\n"


def render_scaling(by_task: dict[str, list[Series]], images: Sequence[str]) -> str:
    """The cost-against-length section: per task, each series' exponents, then the figures."""
    lines = ["## Cost against input length", "", escape(SCALING_LEGEND), ""]
    for task, series in sorted(by_task.items()):
        lines += [f"### {escape(task)}", "", "| " + " | ".join(SCALING_HEADER) + " |"]
        lines.append("| " + " | ".join(["---", "---", "---:", "---:", "---:"]) + " |")
        lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in scaling_rows(series)]
        lines += [""] + [f"![{escape(i)}]({i})" for i in images if i.startswith(f"scaling-{task}-")] + [""]
    return "\n".join(lines)


def render(doc: Document) -> str:
    """The whole Markdown report."""
    tables, prov, generated = doc.tables, doc.prov, doc.generated
    out = ["# bench report", "", f"Generated at {generated} from {prov.records} records.", ""]
    out += [f"- {label}: {escape(text)}" for label, text in header_lines(prov)]
    out += [
        "- Latency: p50/p90/p99 of the timed calls after warm-up; size: bytes as saved; "
        "peak RSS: sampled while timing and evaluating.",
        "",
    ]
    out += [f"> **Warning:** {escape(w)}" for w in prov.warnings]
    out += ["", LEGEND, ""]
    if doc.scaling and doc.scaling[0]:
        out.append(render_scaling(*doc.scaling))
    for i, table in enumerate(tables):
        out.append(render_table(table))
        for image in doc.images.get(i, []):
            out.append(f"![{escape(image)}]({image})")
        if doc.images.get(i):
            out.append("")
    return "\n".join(out)
