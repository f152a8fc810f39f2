"""HTML rendering (index.html of a report folder): one self-contained page, figures beside it.

Every string that comes from a suite or a record (names, titles, notes, errors) goes through
`html.escape`; the page holds no script.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd

from bench.report.document import Document
from bench.report.markdown import LEGEND, delta_text, format_value
from bench.report.provenance import header_lines
from bench.report.scaling import SCALING_HEADER, SCALING_LEGEND, Series, scaling_rows
from bench.report.table import Column, GroupTable, extremes
from bench.report.text import plain


def escape(text: str) -> str:
    """HTML-escaped text without control characters."""
    return html.escape(plain(text))


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1600px; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.5rem; font-size: 1.15rem; }
.generated, .machine { color: #555; }
dl.provenance { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }
dl.provenance dt { font-weight: 600; }
.warning { background: #fff3cd; border-left: 4px solid #e0a800; padding: 0.6rem 1rem; margin: 0.6rem 0; }
.legend { color: #444; font-size: 0.9rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.5rem; text-align: right; vertical-align: top; }
th { background: #f0f0f0; position: sticky; top: 0; }
td.name, th.name, td.status { text-align: left; white-space: nowrap; }
tr.baseline td { background: #fdecea; }
td.best { background: #d4edda; font-weight: 600; }
td.worst { background: #f8d7da; }
.delta { display: block; color: #555; font-size: 0.78rem; white-space: nowrap; }
.ns { color: #888; font-style: italic; }
tr.failed td { color: #888; }
ul.flags li { margin: 0.15rem 0; }
figure { display: inline-block; margin: 1rem 1rem 0 0; vertical-align: top; }
figure img { max-width: 760px; border: 1px solid #eee; }
"""


def _cell(row: pd.Series, col: Column, klass: str) -> str:
    value = format_value(row.get(col.key), col.digits)
    delta = delta_text(row, col)
    extra = ""
    if delta:
        text = escape(delta).replace(" n.s.", ' <span class="ns">n.s.</span>')
        extra = f'<span class="delta">{text}</span>'
    cls = f' class="{klass}"' if klass else ""
    return f"<td{cls}>{escape(value)}{extra}</td>"


def render_table(table: GroupTable, images: Sequence[str]) -> str:
    """One group: title, table, failures, flags and figures."""
    marks = extremes(table)
    out = [f"<section>\n<h2>{escape(table.title)}</h2>"]
    baseline = f" Baseline: <code>{escape(table.baseline)}</code>." if table.baseline else " No successful baseline."
    out.append(f'<p class="machine">Machine: {escape(table.machine)}.{baseline}</p>')
    head = "".join(f'<th scope="col">{escape(c.title)}</th>' for c in table.columns)
    labels = '<th class="name">compressor</th><th>status</th><th>precision</th>'
    out.append(f'<div class="scroll"><table>\n<thead><tr>{labels}{head}</tr></thead>')
    out.append("<tbody>")
    for _, row in table.rows.iterrows():
        name = str(row["compressor"])
        ok = row["status"] == "ok"
        classes = " ".join(c for c in ("baseline" if name == table.baseline else "", "" if ok else "failed") if c)
        cells = [
            f'<td class="name">{escape(name)}</td>',
            f'<td class="status">{escape(str(row["status"]))}</td>',
            f'<td class="status">{escape(str(row["precision"]))}</td>',
        ]
        for col in table.columns:
            if not ok:
                cells.append("<td>–</td>")
                continue
            best, worst = marks.get(col.key, ("", ""))
            cells.append(_cell(row, col, "best" if name == best else "worst" if name == worst else ""))
        tr = f'<tr class="{classes}">' if classes else "<tr>"
        out.append(tr + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    if table.failures:
        items = "".join(f"<li>{escape(f)}</li>" for f in table.failures)
        out.append(f'<h3>Failed or skipped</h3><ul class="flags">{items}</ul>')
    if table.notes:
        items = "".join(f"<li>{escape(n)}</li>" for n in table.notes)
        out.append(f'<h3>Flags and notes</h3><ul class="flags">{items}</ul>')
    for image in images:
        out.append(f'<figure><img src="{escape(image)}" alt="{escape(image)}"></figure>')
    out.append("</section>")
    return "\n".join(out)


def render_scaling(by_task: dict[str, list[Series]], images: Sequence[str]) -> str:
    """The cost-against-length section: per task, each series' exponents, then the figures."""
    out = [f'<section>\n<h2>Cost against input length</h2>\n<p class="legend">{escape(SCALING_LEGEND)}</p>']
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in SCALING_HEADER)
    for task, series in sorted(by_task.items()):
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in scaling_rows(series))
        out.append(f'<h3>{escape(task)}</h3>\n<div class="scroll"><table><thead><tr>{head}</tr></thead>')
        out.append(f"<tbody>{body}</tbody></table></div>")
        for image in (i for i in images if i.startswith(f"scaling-{task}-")):
            out.append(f'<figure><img src="{escape(image)}" alt="{escape(image)}"></figure>')
    out.append("</section>")
    return "\n".join(out)


def render(doc: Document) -> str:
    """The whole page."""
    tables, prov, generated = doc.tables, doc.prov, doc.generated
    rows = "".join(f"<dt>{escape(label)}</dt><dd>{escape(text)}</dd>" for label, text in header_lines(prov))
    warnings = "".join(f'<div class="warning"><strong>Warning:</strong> {escape(w)}</div>' for w in prov.warnings)
    legend = escape(LEGEND).replace("**n.s.**", "<em>n.s.</em>").replace("**Bold**", "Green").replace("_italic_", "red")
    body = "\n".join(render_table(t, doc.images.get(i, [])) for i, t in enumerate(tables))
    if doc.scaling and doc.scaling[0]:
        body = render_scaling(*doc.scaling) + "\n" + body
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>bench report: {escape(', '.join(prov.suites))}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f'<h1>bench report</h1>\n<p class="generated">Generated at {escape(generated)} from {prov.records} records.'
        f'</p>\n<dl class="provenance">{rows}</dl>\n{warnings}\n<p class="legend">{legend}</p>\n{body}\n'
        "</body>\n</html>\n"
    )
