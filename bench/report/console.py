"""The short summary printed at the end of `bench run`."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from bench.core.records import RunRecord
from bench.report.markdown import cell
from bench.report.table import build_tables
from bench.report.text import for_console


def print_summary(records: list[RunRecord], console: Console) -> None:
    """One table per comparable group: the key figures of each compressor (the catalogue's summary
    columns), with deltas."""
    for table in build_tables(records):
        keep = [c for c in table.columns if c.in_summary]
        grid = Table(title=for_console(table.title), title_justify="left")
        grid.add_column("compressor", no_wrap=True)
        grid.add_column("status")
        grid.add_column("precision")
        for col in keep:
            grid.add_column(col.title, justify="right")
        for _, row in table.rows.iterrows():
            ok = row["status"] == "ok"
            cells = [for_console(cell(row, c)) if ok else "–" for c in keep]
            name, precision = for_console(str(row["compressor"])), for_console(str(row["precision"]))
            grid.add_row(name, str(row["status"]), precision, *cells)
        console.print(grid)
        for failure in table.failures:
            console.print(f"  [red]{for_console(failure)}[/red]")
