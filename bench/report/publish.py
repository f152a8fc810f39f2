"""`bench report`: build a self-contained report folder from stored records (never imports torch).

The folder holds index.html with its SVG figures beside it, README.md (the same tables, and the
figures), results.csv and, when asked, results.parquet; it can be pushed to a static host as it is.
The same records give the same bytes, apart from the generated-at line.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from bench.errors import BenchError
from bench.records import LoadedRecords
from bench.report import html, markdown
from bench.report.export import flat_frame, write_csv, write_parquet
from bench.report.plots import table_figures
from bench.report.provenance import provenance
from bench.report.table import build_tables

FORMATS = ("html", "md", "csv", "parquet")
DEFAULT_FORMATS = ("html", "md", "csv")


def parse_formats(text: str) -> list[str]:
    """'html,md' -> ['html', 'md'], or a BenchError naming the unknown format."""
    chosen = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise BenchError(f"--format: unknown format {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)}")
    return chosen


def publish(
    loaded: LoadedRecords,
    folder: Path,
    formats: Sequence[str] = DEFAULT_FORMATS,
    baseline: str | None = None,
    generated: str | None = None,
) -> list[Path]:
    """Write the report folder; return the files written."""
    tables = build_tables(loaded.records, loaded.predictions, baseline)
    if baseline and not any(t.baseline == baseline for t in tables):
        raise BenchError(f"--baseline: no successful run labelled '{baseline}' in these records")
    prov = provenance(loaded.records)
    when = generated or datetime.now(timezone.utc).isoformat(timespec="seconds")
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    images: dict[int, list[str]] = {}
    if {"html", "md"} & set(formats):
        for stale in folder.glob("table-*.svg"):
            stale.unlink()
        for i, table in enumerate(tables):
            images[i] = table_figures(table, folder, f"table-{i + 1:02d}")
            written += [folder / name for name in images[i]]
    if "md" in formats:
        written.append(_write(folder / "README.md", markdown.render(tables, prov, when, images)))
    if "html" in formats:
        written.append(_write(folder / "index.html", html.render(tables, prov, when, images)))
    frame = flat_frame(tables) if {"csv", "parquet"} & set(formats) else None
    if frame is not None and "csv" in formats:
        write_csv(frame, folder / "results.csv")
        written.append(folder / "results.csv")
    if frame is not None and "parquet" in formats:
        try:
            write_parquet(frame, folder / "results.parquet")
        except ImportError as exc:
            raise BenchError(f"--format parquet needs pyarrow ({exc}); pip install pyarrow") from None
        written.append(folder / "results.parquet")
    return written


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
