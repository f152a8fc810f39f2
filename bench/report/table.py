"""Build comparison tables from records: one table per group of comparable runs, one row per compressor."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.environment import describe
from bench.measure.latency import LatencyResult
from bench.records import RecordError, RunRecord, Status, iter_record_files, load_record, read_predictions
from bench.report.bootstrap import accuracy_delta, median_change

MB = 1024 * 1024


@dataclass
class Column:
    """A reported figure: where it comes from, how it reads, which direction is better."""

    key: str
    title: str
    higher_is_better: bool | None
    delta: str | None = None
    """'abs' (difference, in the metric's unit), 'rel' (percent change) or None."""
    digits: int = 2


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


@dataclass
class LoadedRecords:
    """Records found under the given paths (in a stable order), their files, and the files that could
    not be read."""

    records: list[RunRecord]
    unreadable: list[str]
    files: dict[int, Path] = field(default_factory=dict)
    """id(record) -> the record's file, to find its predictions beside it."""

    def predictions(self, record: RunRecord) -> list[dict[str, Any]] | None:
        """The record's per-example predictions, or None when they are not beside it."""
        path = self.files.get(id(record))
        if path is None or record.accuracy is None or not record.accuracy.predictions_file:
            return None
        file = path.parent / record.accuracy.predictions_file
        return read_predictions(file) if file.is_file() else None


def load_records(paths: Iterable[Path]) -> LoadedRecords:
    """Every record under `paths`; unreadable files are listed, not fatal."""
    loaded = LoadedRecords([], [])
    for root in paths:
        for path in sorted(iter_record_files(root)):
            try:
                record = load_record(path)
            except RecordError as exc:
                loaded.unreadable.append(str(exc))
                continue
            loaded.records.append(record)
            loaded.files[id(record)] = path
    return loaded


def _group_title(r: RunRecord) -> str:
    s = r.spec
    n = r.accuracy.n_examples if r.accuracy else s.task.limit
    shape = f"batch {s.batch_size}, seq {s.sequence_length}"
    mode = ", quick" if s.quick else ""
    return (
        f"{s.task.name} · {s.model.display_name} · {Path(s.task.dataset).name} {s.task.split}"
        f" ({n if n is not None else 'all'} examples) · {s.device} · {shape}{mode}"
    )


def _row(r: RunRecord) -> dict[str, Any]:
    s = r.spec
    row: dict[str, Any] = {
        "compressor": s.compressor.display_name,
        "status": r.status.value,
    }
    if r.accuracy:
        for name, metric in r.accuracy.metrics.items():
            row[f"acc.{name}"] = metric.value
    if r.agreement:
        for name, metric in r.agreement.metrics.items():
            row[f"agree.{name}"] = metric.value
    lat = main_latency(r)
    if lat is not None:
        row.update(
            {
                "lat.p50": lat.stats.p50,
                "lat.p90": lat.stats.p90,
                "lat.p99": lat.stats.p99,
                "lat.cv": lat.stats.cv_percent,
                "lat.n": lat.stats.n,
                "throughput": lat.throughput_samples_per_s,
            }
        )
    for name, key in (("first_token", "ttft.p50"), ("per_token", "per_token.p50")):
        if name in r.latency:
            row[key] = r.latency[name].stats.p50
    if "generate" in r.latency and r.latency["generate"].tokens_per_s is not None:
        row["tokens_per_s"] = r.latency["generate"].tokens_per_s
    if r.memory and r.memory.steady_peak:
        row["mem.steady"] = r.memory.steady_peak / MB
    if r.memory and r.memory.load_peak:
        row["mem.load"] = r.memory.load_peak / MB
    if r.size and r.size.saved:
        row["size.mb"] = r.size.saved.bytes / MB
        row["size.zip"] = r.size.saved.zip_bytes / MB
    if r.size and r.size.census_after:
        row["params.m"] = r.size.census_after.parameters / 1e6
        row["sparsity"] = 100 * r.size.census_after.sparsity
    return row


# Figures kept in records but left out of tables: constant per group, or one of several agreement scores.
TABLE_HIDDEN = frozenset(
    {"reference_words", "rouge1_agreement", "rouge2_agreement", "rougeLsum_agreement", "f1_agreement"}
)


def _columns(metric_names: list[str], agree_names: list[str], higher: dict[str, bool | None]) -> list[Column]:
    scored = sorted(metric_names, key=lambda m: higher.get(m, True) is None)  # quality first, then lengths
    cols = [
        Column(f"acc.{m}", m.replace("_", " "), higher.get(m, True), "abs") for m in scored if m not in TABLE_HIDDEN
    ]
    cols += [Column(f"agree.{m}", m.replace("_", " "), True) for m in agree_names if m not in TABLE_HIDDEN]
    cols += [
        Column("lat.p50", "p50 ms", False, "rel"),
        Column("lat.p90", "p90 ms", False),
        Column("lat.p99", "p99 ms", False),
        Column("lat.cv", "CV %", None, digits=1),
        Column("ttft.p50", "first token ms", False, "rel"),
        Column("per_token.p50", "per token ms", False, "rel"),
        Column("tokens_per_s", "tokens/s", True, "rel", 1),
        Column("throughput", "samples/s", True, "rel", 1),
        Column("mem.steady", "peak RSS MB", False, "rel", 0),
        Column("size.mb", "size MB", False, "rel", 1),
        Column("size.zip", "zipped MB", False, None, 1),
        Column("params.m", "params M", False, None, 2),
        Column("sparsity", "sparsity %", None, None, 1),
    ]
    return cols


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


def compression_facts(record: RunRecord) -> list[str]:
    """Human-readable lines for what the compressors reported doing (training, calibration)."""
    facts = record.compression
    lines = []
    if "train_steps" in facts:
        cached = ", loaded from the student cache" if facts.get("cached") else ""
        first, last = facts.get("loss_first"), facts.get("loss_last")
        loss = f"loss {first:.2f} → {last:.2f}" if first is not None and last is not None else "loss not finite"
        lines.append(
            f"student of layers {facts.get('student_layers')} trained {facts['train_steps']} steps in "
            f"{facts.get('train_time_s') or 0:.0f} s, {loss}{cached}"
        )
    calibration = facts.get("calibration")
    if isinstance(calibration, dict) and calibration.get("example_ids"):
        method = f", {calibration['method']}" if calibration.get("method") else ""
        lines.append(f"calibrated on {len(calibration['example_ids'])} training-split examples{method}")
    return lines


PredictionsOf = Callable[[RunRecord], "list[dict[str, Any]] | None"]


def main_latency(record: RunRecord) -> LatencyResult | None:
    """The latency a table reports for a run: the forward pass, or the whole generate call."""
    return record.latency.get("forward") or record.latency.get("generate") or next(iter(record.latency.values()), None)


def add_intervals(
    frame: pd.DataFrame,
    members: list[RunRecord],
    base: RunRecord,
    metric_names: list[str],
    predictions: PredictionsOf | None,
) -> pd.DataFrame:
    """Add `<key>.lo`/`<key>.hi` bootstrap bounds of each delta against `base`: accuracy (paired, over
    the shared examples) and p50 latency (over the raw samples)."""
    out = frame.copy()
    base_rows = predictions(base) if predictions else None
    base_latency = main_latency(base)
    for i, record in enumerate(members):
        if record is base or record.status != Status.OK:
            continue
        rows = predictions(record) if predictions and base_rows else None
        for metric in metric_names:
            interval = accuracy_delta(metric, base_rows, rows) if base_rows and rows else None
            if interval is not None:
                out.loc[i, f"acc.{metric}.lo"] = interval.low
                out.loc[i, f"acc.{metric}.hi"] = interval.high
        latency = main_latency(record)
        if latency is not None and base_latency is not None and latency.samples_ms and base_latency.samples_ms:
            interval = median_change(base_latency.samples_ms, latency.samples_ms)
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


def _notes(members: list[RunRecord]) -> list[str]:
    shared = set.intersection(*(set(r.notes) for r in members)) if len(members) > 1 else set()
    notes = [f"all runs: {n}" for n in members[0].notes if n in shared]
    notes += [f"{r.spec.compressor.display_name}: {n}" for r in members for n in r.notes if n not in shared]
    notes += [
        f"{r.spec.compressor.display_name}: verified: {r.verification.summary}"
        for r in members
        if r.verification and r.verification.summary != "nothing claimed"
    ]
    notes += [f"{r.spec.compressor.display_name}: {fact}" for r in members for fact in compression_facts(r)]
    notes = [n for n in notes if not n.split(": ", 1)[-1].startswith("random weights (")]  # said once below
    if any(r.weights == "random" for r in members):
        build = next((r.model_info for r in members if r.model_info), {})
        architecture = build.get("architecture") or members[0].spec.model.architecture or "model"
        notes.insert(
            0,
            f"RANDOM WEIGHTS ({architecture} shapes, {build.get('parameters', 0):,} "
            "parameters, tokenizer trained locally): accuracy scores are not meaningful; latency, memory, "
            "size and agreement with the baseline are",
        )
    return notes


def build_tables(
    records: list[RunRecord], predictions: PredictionsOf | None = None, baseline: str | None = None
) -> list[GroupTable]:
    """Group records into comparable tables, in a stable order. `baseline` names the compressor row
    that deltas refer to (default: the uncompressed `baseline` run); `predictions` gives a record's
    per-example rows, for the accuracy intervals."""
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for r in records:
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
        frame = add_deltas(pd.DataFrame([_row(r) for r in members]), columns, base_label)
        if base is not None:
            frame = add_intervals(frame, members, base, metric_names, predictions)
        failures = [
            f"{r.spec.compressor.display_name}: {r.status.value}: {r.error.message if r.error else ''}".rstrip(": ")
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
                notes=_notes(members),
                failures=failures,
                records=members,
                primary_metric=_primary_metric(members, metric_names),
            )
        )
    return tables


# The plotted accuracy of the built-in tasks (reports never import task plugins, which may import torch).
PRIMARY_METRICS = {"qa": "f1", "translation": "bleu", "summarization": "rougeL"}


def _primary_metric(members: list[RunRecord], metric_names: list[str]) -> str | None:
    """The accuracy metric plotted against latency: the task's primary one, else its first scored one."""
    primary = PRIMARY_METRICS.get(members[0].spec.task.name)
    if primary in metric_names:
        return primary
    return metric_names[0] if metric_names else None
