"""Flat exports of a report: one row per run (CSV, Parquet), every figure of the tables and more."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bench.report.table import GroupTable
from bench.report.text import plain, spreadsheet_safe

IDENTITY = [
    "suite",
    "task",
    "model",
    "dataset",
    "split",
    "device",
    "batch_size",
    "sequence_length",
    "machine",
    "compressor",
    "status",
    "precision",
    "attention",
    "compiled",
    "weights",
    "key",
]


def flat_frame(tables: Sequence[GroupTable]) -> pd.DataFrame:
    """Every run of every table, one row each, identity columns first, then figures in table order."""
    parts = []
    for table in tables:
        frame = table.rows.copy()
        for i, record in enumerate(table.records):
            s = record.spec
            frame.loc[i, "suite"] = s.suite
            frame.loc[i, "task"] = s.task.name
            frame.loc[i, "model"] = s.model.display_name
            frame.loc[i, "dataset"] = Path(s.task.dataset).name
            frame.loc[i, "split"] = s.task.split
            frame.loc[i, "device"] = s.device
            frame.loc[i, "batch_size"] = s.batch_size
            frame.loc[i, "sequence_length"] = s.sequence_length
            frame.loc[i, "machine"] = record.machine
            frame.loc[i, "weights"] = record.weights
            frame.loc[i, "attention"] = record.execution.attention if record.execution else None
            frame.loc[i, "compiled"] = record.execution.compiled if record.execution else None
            frame.loc[i, "key"] = s.key
            frame.loc[i, "error"] = record.error.message if record.error else ""
        parts.append(frame)
    if not parts:
        return pd.DataFrame(columns=IDENTITY)
    flat = pd.concat(parts, ignore_index=True)
    figures = sorted((c for c in flat.columns if c not in IDENTITY and c != "error"), key=_figure_order)
    flat = flat[IDENTITY + figures + ["error"]]
    for col in ("batch_size", "sequence_length"):
        flat[col] = flat[col].astype(int)
    return flat


_PREFIXES = (
    "acc",
    "agree",
    "lat",
    "ttft",
    "per_token",
    "tokens_per_s",
    "throughput",
    "mem",
    "size",
    "params",
    "sparsity",
    "compile",
)
_SUFFIXES = ("", ".delta", ".lo", ".hi")


def _figure_order(column: str) -> tuple[int, str, int]:
    """Figures grouped by kind (accuracy, agreement, latency, ...), each followed by its delta and interval."""
    suffix = next((s for s in reversed(_SUFFIXES) if s and column.endswith(s)), "")
    base = column[: len(column) - len(suffix)] if suffix else column
    prefix = base.split(".")[0]
    rank = _PREFIXES.index(prefix) if prefix in _PREFIXES else len(_PREFIXES)
    return rank, base, _SUFFIXES.index(suffix)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """CSV with a fixed float format, so the same records give the same bytes. Text cells that a
    spreadsheet would run as a formula are neutralised."""
    safe = frame.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]):
            safe[column] = safe[column].map(lambda v: spreadsheet_safe(plain(v)) if isinstance(v, str) else v)
    safe.to_csv(path, index=False, float_format="%.6g", lineterminator="\n")


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Parquet (needs pyarrow)."""
    frame.to_parquet(path, index=False)
