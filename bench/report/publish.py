"""`bench report`: build a self-contained report folder from stored records (never imports torch).

The folder holds index.html with its SVG figures beside it, README.md (the same tables, and the
figures), results.csv and, when asked, results.parquet; it can be pushed to a static host as it is.
The same records give the same bytes, apart from the generated-at line.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from bench.core.errors import BenchError
from bench.core.records import LoadedRecords
from bench.report import html, markdown
from bench.report.document import Document
from bench.report.export import flat_frame, write_csv, write_parquet
from bench.report.plots import scaling_figures, table_figures
from bench.report.provenance import Provenance, provenance
from bench.report.scaling import Series, scaling_series
from bench.report.table import GroupTable, build_tables

FORMATS = ("html", "md", "csv", "parquet")
DEFAULT_FORMATS = ("html", "md", "csv")


def parse_formats(text: str) -> list[str]:
    """'html,md' -> ['html', 'md'], or a BenchError naming the unknown format."""
    chosen = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise BenchError(f"--format: unknown format {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)}")
    return chosen


MARKER = ".bench-report"
"""Written into every report folder: the files bench wrote there, one per line."""


def check_output(folder: Path, force: bool) -> None:
    """Refuse to write into a folder that holds other things than a bench report, unless `force`."""
    if force or not folder.exists():
        return
    if not folder.is_dir():
        raise BenchError(f"-o {folder}: not a folder")
    if (folder / MARKER).is_file() or not any(folder.iterdir()):
        return
    readme = folder / "README.md"
    if readme.is_file() and readme.read_text(encoding="utf-8", errors="replace").startswith("# bench report"):
        return  # made by a bench before the marker existed
    raise BenchError(
        f"-o {folder}: the folder holds files that are not a bench report (no {MARKER} file): refusing to "
        "overwrite them; name an empty or new folder, or add --force"
    )


def publish(
    loaded: LoadedRecords,
    folder: Path,
    formats: Sequence[str] = DEFAULT_FORMATS,
    baseline: str | None = None,
    generated: str | None = None,
    force: bool = False,
) -> list[Path]:
    """Write the report folder; return the files written. The report is built in a temporary folder
    beside the target and moved into place file by file, so a failure leaves the old report whole; files
    of the previous report that the new one does not have (figures of removed tables) are removed."""
    check_output(folder, force)
    tables = build_tables(loaded.records, loaded.predictions, baseline)
    if baseline and not any(t.baseline == baseline for t in tables):
        raise BenchError(f"--baseline: no successful run labelled '{baseline}' in these records")
    prov = provenance(loaded.records, loaded.unreadable)
    when = generated or datetime.now(timezone.utc).isoformat(timespec="seconds")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        names = _render(staging, tables, prov, when, formats)
        folder.mkdir(exist_ok=True)
        marker = folder / MARKER
        previous = marker.read_text(encoding="utf-8").split() if marker.is_file() else []
        for name in names:
            os.replace(staging / name, folder / name)
        for stale in set(previous) - set(names):
            if Path(stale).name == stale:  # only names bench wrote, never paths
                (folder / stale).unlink(missing_ok=True)
        _write(marker, "".join(f"{name}\n" for name in names))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [folder / name for name in names]


def _render(folder: Path, tables: list[GroupTable], prov: Provenance, when: str, formats: Sequence[str]) -> list[str]:
    """Write every file of the report into `folder`; return their names."""
    written: list[Path] = []
    images: dict[int, list[str]] = {}
    scaling: tuple[dict[str, list[Series]], list[str]] | None = None
    if {"html", "md"} & set(formats):
        for i, table in enumerate(tables):
            images[i] = table_figures(table, folder, f"table-{i + 1:02d}")
            written += [folder / name for name in images[i]]
        by_task = scaling_series(tables)
        scaling = (by_task, scaling_figures(by_task, folder))
        written += [folder / name for name in scaling[1]]
    if "md" in formats:
        written.append(_write(folder / "README.md", markdown.render(Document(tables, prov, when, images, scaling))))
    if "html" in formats:
        written.append(_write(folder / "index.html", html.render(Document(tables, prov, when, images, scaling))))
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
    return [p.name for p in written]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
