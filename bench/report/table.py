"""Build comparison tables from records: one table per group of comparable runs, one row per compressor."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.environment import describe
from bench.records import RecordError, RunRecord, Status, iter_record_files, load_record

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


@dataclass
class LoadedRecords:
    """Records found under the given paths, and the files that could not be read."""

    records: list[RunRecord]
    unreadable: list[str]


def load_records(paths: Iterable[Path]) -> LoadedRecords:
    """Every record under `paths`; unreadable files are listed, not fatal."""
    records: list[RunRecord] = []
    unreadable: list[str] = []
    for root in paths:
        for path in iter_record_files(root):
            try:
                records.append(load_record(path))
            except RecordError as exc:
                unreadable.append(str(exc))
    return LoadedRecords(records, unreadable)


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
    lat = r.latency.get("forward") or r.latency.get("generate") or next(iter(r.latency.values()), None)
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
    cols = [
        Column(f"acc.{m}", m.replace("_", " "), higher.get(m, True), "abs")
        for m in metric_names
        if m not in TABLE_HIDDEN
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
    return out


def compression_facts(record: RunRecord) -> list[str]:
    """Human-readable lines for what the compressors reported doing (training, calibration)."""
    facts = record.compression
    lines = []
    if "train_steps" in facts:
        cached = ", loaded from the student cache" if facts.get("cached") else ""
        lines.append(
            f"student of layers {facts.get('student_layers')} trained {facts['train_steps']} steps in "
            f"{facts.get('train_time_s', 0):.0f} s, loss {facts.get('loss_first', 0):.2f} → "
            f"{facts.get('loss_last', 0):.2f}{cached}"
        )
    calibration = facts.get("calibration")
    if isinstance(calibration, dict) and calibration.get("example_ids"):
        method = f", {calibration['method']}" if calibration.get("method") else ""
        lines.append(f"calibrated on {len(calibration['example_ids'])} training-split examples{method}")
    return lines


def build_tables(records: list[RunRecord]) -> list[GroupTable]:
    """Group records into comparable tables, in a stable order."""
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for r in records:
        groups.setdefault((r.machine, r.spec.group), []).append(r)
    tables: list[GroupTable] = []
    for (machine, _), members in sorted(groups.items(), key=lambda kv: (kv[0][0], _group_title(kv[1][0]))):
        members.sort(key=lambda r: (not r.spec.is_baseline, r.spec.compressor.display_name))
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
        baseline = next((r.spec.compressor.display_name for r in members if r.spec.is_baseline), None)
        ok = [r for r in members if r.status == Status.OK]
        columns = _columns(metric_names, agree_names, higher)
        frame = pd.DataFrame([_row(r) for r in members])
        frame = add_deltas(frame, columns, baseline if any(r.spec.is_baseline for r in ok) else None)
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
            notes.insert(
                0,
                f"RANDOM WEIGHTS ({build.get('architecture', 'model')} shapes, {build.get('parameters', 0):,} "
                "parameters, tokenizer trained locally): accuracy scores are not meaningful; latency, memory, "
                "size and agreement with the baseline are",
            )
        failures = [
            f"{r.spec.compressor.display_name}: {r.status.value}: {r.error.message if r.error else ''}".rstrip(": ")
            for r in members
            if r.status != Status.OK
        ]
        env = next((r.environment for r in members if r.environment), None)
        title = _group_title(members[0])
        tables.append(
            GroupTable(
                title=title,
                machine=describe(env) if env else machine,
                baseline=baseline,
                rows=frame,
                columns=[c for c in columns if c.key in frame],
                notes=notes,
                failures=failures,
            )
        )
    return tables


def machines_of(records: list[RunRecord]) -> list[str]:
    """Distinct machines the records were measured on."""
    return sorted({describe(r.environment) if r.environment else r.machine for r in records})
