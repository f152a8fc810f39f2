"""Build comparison tables from records: one table per group of comparable runs, one row per compressor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.catalogue import BY_NAME, FIXED, TABLE_ORDER, Metric, task_metric
from bench.core.environment import describe
from bench.core.records import RunRecord, Status
from bench.report.bootstrap import accuracy_delta
from bench.report.notes import table_notes

Column = Metric
"""A table column is a catalogue metric."""


@dataclass
class GroupTable:
    """Runs that can be compared: same machine, model, task data, device and shapes."""

    title: str
    machine: str
    baseline: str | None
    rows: pd.DataFrame
    columns: list[Column]
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    records: list[RunRecord] = field(default_factory=list)
    """The runs, in row order."""
    primary_metric: str | None = None


def _group_title(r: RunRecord) -> str:
    s = r.spec
    n = r.accuracy.n_examples if r.accuracy else s.task.limit
    shape = f"batch {s.batch_size}, seq {s.sequence_length}"
    mode = ", quick" if s.quick else ""
    return (
        f"{s.task.name} · {s.model.display_name} · {Path(s.task.dataset).name} {s.task.split}"
        f" ({n if n is not None else 'all'} examples{f' from #{s.task.offset}' if s.task.offset else ''})"
        f" · {s.device} · {shape}{mode}"
    )


def _row(r: RunRecord, task_metrics: list[Metric]) -> dict[str, object]:
    row: dict[str, object] = {
        "compressor": r.spec.compressor.display_name,
        "status": r.status.value,
        "precision": r.precision.label if r.precision is not None else "–",
    }
    for metric in (*task_metrics, *FIXED):
        value = metric.read(r) if metric.in_export else None
        if value is not None:
            row[metric.key] = value
    return row


def _columns(metric_names: list[str], agree_names: list[str], higher: dict[str, bool | None]) -> list[Column]:
    scored = sorted(metric_names, key=lambda m: higher.get(m, True) is None)  # quality first, then lengths
    cols = [task_metric("accuracy", m, higher.get(m, True)) for m in scored]
    cols += [task_metric("agreement", m, True) for m in agree_names]
    return [c for c in cols if c.in_table] + [BY_NAME[key] for key in TABLE_ORDER]


def add_deltas(frame: pd.DataFrame, columns: list[Column], baseline: str | None) -> pd.DataFrame:
    """Add `<key>.delta` columns against the baseline row: differences or percent changes."""
    if baseline is None or baseline not in set(frame["compressor"]):
        return frame
    base = frame.loc[frame["compressor"] == baseline].iloc[0]
    out = frame.copy()
    for col in columns:
        if col.delta is None or col.key not in frame or pd.isna(base.get(col.key)):
            continue
        if col.delta == "abs":
            out[f"{col.key}.delta"] = frame[col.key] - base[col.key]
        elif base[col.key]:
            out[f"{col.key}.delta"] = 100.0 * (frame[col.key] - base[col.key]) / base[col.key]
        if f"{col.key}.delta" in out:
            out.loc[frame["compressor"] == baseline, f"{col.key}.delta"] = float("nan")
    return out


PredictionsOf = Callable[[RunRecord], "list[dict[str, Any]] | None"]


def add_intervals(
    frame: pd.DataFrame,
    members: list[RunRecord],
    base: RunRecord,
    metric_names: list[str],
    predictions: PredictionsOf | None,
) -> pd.DataFrame:
    """Add `<key>.lo`/`<key>.hi` bootstrap bounds of each delta against `base`: accuracy (paired, over
    the shared examples) and p50 latency (over the raw samples). A run that scored only some of the
    baseline's examples (stopped at a rung) gets the paired delta on those as its delta too."""
    out = frame.copy()
    base_rows = predictions(base) if predictions else None
    for i, record in enumerate(members):
        if record is base or record.status != Status.OK:
            continue
        rows = predictions(record) if predictions and base_rows else None
        partial = rows is not None and base_rows is not None and len(rows) < len(base_rows)
        for metric in metric_names:
            interval = accuracy_delta(metric, base_rows, rows) if base_rows and rows else None
            if interval is not None:
                out.loc[i, f"acc.{metric}.lo"] = interval.low
                out.loc[i, f"acc.{metric}.hi"] = interval.high
                if partial:
                    out.loc[i, f"acc.{metric}.delta"] = interval.delta
        interval = BY_NAME["latency.p50"].change(base, record)
        if interval is not None:
            out.loc[i, "lat.p50.lo"] = interval.low
            out.loc[i, "lat.p50.hi"] = interval.high
    return out


def extremes(table: GroupTable) -> dict[str, tuple[str, str]]:
    """Per column with a direction: the (best, worst) compressor among the runs that succeeded."""
    ok = table.rows[table.rows["status"] == "ok"]
    found: dict[str, tuple[str, str]] = {}
    for col in table.columns:
        if col.higher_is_better is None or col.key not in ok:
            continue
        rows = ok[ok["compressor"] != table.baseline] if col.key.startswith("agree.") else ok  # 100 by definition
        values = rows[["compressor", col.key]].dropna()
        if len(values) < 2 or values[col.key].nunique() < 2:
            continue
        ordered = values.sort_values([col.key, "compressor"], ascending=[not col.higher_is_better, True], kind="stable")
        found[col.key] = (str(ordered.iloc[0]["compressor"]), str(ordered.iloc[-1]["compressor"]))
    return found


def build_tables(
    records: list[RunRecord], predictions: PredictionsOf | None = None, baseline: str | None = None
) -> list[GroupTable]:
    """Group records into comparable tables, in a stable order. `baseline` names the compressor row
    that deltas refer to (default: the uncompressed `baseline` run); `predictions` gives a record's
    per-example rows, for the accuracy intervals."""
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for r in records:
        if r.spec.retiming:  # a repeated timing of a run in the table (bench tune's near-ties), not a row
            continue
        groups.setdefault((r.machine, r.spec.group), []).append(r)
    tables: list[GroupTable] = []
    for (machine, _), members in sorted(groups.items(), key=lambda kv: (kv[0][0], _group_title(kv[1][0]))):

        def is_base(r: RunRecord) -> bool:
            return r.spec.compressor.display_name == baseline if baseline else r.spec.is_baseline

        members.sort(key=lambda r: (not is_base(r), r.spec.compressor.display_name, r.spec.key))
        metric_names: list[str] = []
        agree_names: list[str] = []
        higher: dict[str, bool | None] = {}
        for r in members:
            for name, m in r.accuracy.metrics.items() if r.accuracy else []:
                if name not in metric_names:
                    metric_names.append(name)
                higher[name] = m.higher_is_better
            for name in r.agreement.metrics if r.agreement else []:
                if name not in agree_names:
                    agree_names.append(name)
        base = next((r for r in members if is_base(r) and r.status == Status.OK), None)
        base_label = base.spec.compressor.display_name if base else None
        columns = _columns(metric_names, agree_names, higher)
        task_metrics = [task_metric("accuracy", m, higher.get(m, True)) for m in metric_names]
        task_metrics += [task_metric("agreement", m, True) for m in agree_names]
        frame = add_deltas(pd.DataFrame([_row(r, task_metrics) for r in members]), columns, base_label)
        if base is not None:
            frame = add_intervals(frame, members, base, metric_names, predictions)
        failures = [
            f"{r.spec.compressor.display_name}: {r.status.value}: {r.error.describe() if r.error else ''}".rstrip(": ")
            for r in members
            if r.status != Status.OK
        ]
        env = next((r.environment for r in members if r.environment), None)
        tables.append(
            GroupTable(
                title=_group_title(members[0]),
                machine=describe(env) if env else machine,
                baseline=base_label,
                rows=frame,
                columns=[c for c in columns if c.key in frame],
                notes=table_notes(members),
                failures=failures,
                records=members,
                primary_metric=_primary_metric(members, metric_names),
            )
        )
    return tables


# Records older than schema 2 do not name their task's primary metric: the built-in tasks' (reports never
# import task plugins, which may import torch).
PRIMARY_METRICS_BEFORE_SCHEMA_2 = {"qa": "f1", "translation": "bleu", "summarization": "rougeL"}


def _primary_metric(members: list[RunRecord], metric_names: list[str]) -> str | None:
    """The accuracy metric plotted against latency: the task's primary one, else its first scored one."""
    stored = next((r.accuracy.primary_metric for r in members if r.accuracy and r.accuracy.primary_metric), None)
    primary = stored or PRIMARY_METRICS_BEFORE_SCHEMA_2.get(members[0].spec.task.name)
    if primary in metric_names:
        return primary
    return metric_names[0] if metric_names else None
