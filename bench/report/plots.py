"""Report figures (matplotlib, SVG): accuracy against latency with the Pareto front, size and memory,
latency distributions, and tokens/s for generation. Deterministic: the same records give the same
bytes (fixed SVG hash salt, no date in the metadata)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from bench.catalogue import main_latency
from bench.report.scaling import Series, exponent_text, task_generates
from bench.report.table import GroupTable

BASE_COLOR = "#d62728"
OTHER_COLOR = "#1f77b4"
FRONT_COLOR = "#2ca02c"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "bench-report", "svg.fonttype": "path", "font.size": 9})
    return plt


def _save(fig: Any, path: Path) -> str:
    fig.savefig(path, format="svg", metadata={"Date": None}, bbox_inches="tight")
    _pyplot().close(fig)
    return path.name


def pareto_front(points: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """The (name, latency, accuracy) points no other point beats on both: lower latency and higher accuracy."""
    front: list[tuple[str, float, float]] = []
    best = -math.inf
    for name, latency, accuracy in sorted(points, key=lambda p: (p[1], -p[2], p[0])):
        if accuracy > best:
            front.append((name, latency, accuracy))
            best = accuracy
    return front


def _ok(table: GroupTable) -> pd.DataFrame:
    return table.rows[table.rows["status"] == "ok"]


def _colors(names: list[str], baseline: str | None) -> list[str]:
    return [BASE_COLOR if n == baseline else OTHER_COLOR for n in names]


def plot_pareto(table: GroupTable, path: Path, random_weights: bool) -> str | None:
    """Accuracy (the task's primary metric) against p50 latency, one point per compressor."""
    metric = table.primary_metric
    key = f"acc.{metric}"
    rows = _ok(table)
    if metric is None or key not in rows or "lat.p50" not in rows:
        return None
    data = rows[["compressor", "lat.p50", key]].dropna()
    if data.empty:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    points = [(str(r["compressor"]), float(r["lat.p50"]), float(r[key])) for _, r in data.iterrows()]
    front = pareto_front(points)
    ax.step([p[1] for p in front], [p[2] for p in front], where="post", color=FRONT_COLOR, label="Pareto front")
    for name, latency, accuracy in points:
        is_base = name == table.baseline
        ax.scatter(
            latency,
            accuracy,
            marker="*" if is_base else "o",
            s=140 if is_base else 40,
            color=BASE_COLOR if is_base else OTHER_COLOR,
            zorder=3,
        )
        ax.annotate(
            name + (" (baseline)" if is_base else ""),
            (latency, accuracy),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=8,
        )
    ax.set_xlabel("p50 latency (ms, lower is better)")
    ax.set_ylabel(f"{metric} (higher is better)")
    title = f"{metric} against latency"
    if random_weights:
        title += " — random weights: accuracy not meaningful"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_size_memory(table: GroupTable, path: Path) -> str | None:
    """Saved size and peak RSS per compressor, the baseline in red with a dashed reference line."""
    rows = _ok(table)
    panels = [
        (k, t) for k, t in (("size.mb", "saved size (MB)"), ("mem.latency", "peak RSS while timing (MB)")) if k in rows
    ]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 0.35 * len(rows) + 1.5), squeeze=False)
    names = [str(n) for n in rows["compressor"]]
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        values = rows[key].astype(float).tolist()
        ax.barh(names, values, color=_colors(names, table.baseline))
        base = rows.loc[rows["compressor"] == table.baseline, key]
        if len(base) and not math.isnan(float(base.iloc[0])):
            ax.axvline(float(base.iloc[0]), color=BASE_COLOR, linestyle="--", linewidth=1)
        ax.set_xlabel(title + ", lower is better")
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("size and memory (red: baseline)")
    return _save(fig, path)


def plot_latency(table: GroupTable, path: Path) -> str | None:
    """Distribution of the raw latency samples per compressor (box plot)."""
    runs = [(r.spec.compressor.display_name, main_latency(r)) for r in table.records if r.status.value == "ok"]
    runs = [(n, lat) for n, lat in runs if lat is not None and lat.samples_ms]
    if not runs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(runs) + 1.5))
    box = ax.boxplot([lat.samples_ms for _, lat in runs if lat], vert=False, patch_artist=True, showfliers=True)
    for patch, (name, _) in zip(box["boxes"], runs, strict=True):
        patch.set_facecolor(BASE_COLOR if name == table.baseline else OTHER_COLOR)
        patch.set_alpha(0.6)
    ax.set_yticks(range(1, len(runs) + 1), [n for n, _ in runs])
    ax.invert_yaxis()
    scope = runs[0][1].scope if runs[0][1] else ""
    ax.set_xlabel(f"latency per call (ms): {scope}")
    ax.set_title("latency distribution after warm-up (red: baseline)")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_tokens(table: GroupTable, path: Path) -> str | None:
    """Generation throughput (tokens/s) per compressor."""
    rows = _ok(table)
    if "tokens_per_s" not in rows or rows["tokens_per_s"].isna().all():
        return None
    plt = _pyplot()
    names = [str(n) for n in rows["compressor"]]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(rows) + 1.5))
    ax.barh(names, rows["tokens_per_s"].astype(float).tolist(), color=_colors(names, table.baseline))
    ax.set_xlabel("new tokens per second (higher is better)")
    ax.set_title("generation throughput, fixed number of new tokens (red: baseline)")
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def table_figures(table: GroupTable, folder: Path, stem: str) -> list[str]:
    """Every figure of one table, written into `folder`; returns their file names."""
    random_weights = any(r.weights == "random" for r in table.records)
    made = [
        plot_pareto(table, folder / f"{stem}-pareto.svg", random_weights),
        plot_size_memory(table, folder / f"{stem}-size-memory.svg"),
        plot_latency(table, folder / f"{stem}-latency.svg"),
        plot_tokens(table, folder / f"{stem}-tokens.svg"),
    ]
    return [m for m in made if m]


def plot_scaling(task: str, series: list[Series], path: Path, memory: bool = False) -> str | None:
    """p50 latency (or peak RSS) against sequence length on log-log axes, one line per model/row/attention,
    with the fitted growth exponent in the legend."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = 0
    for s in series:
        values = s.peak_mb if memory else s.latency_ms
        points = [(x, y) for x, y in zip(s.lengths, values, strict=True) if y is not None]
        if len(points) < 2:
            continue
        k = exponent_text(s.exponent(values))
        ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=f"{s.label} (k={k})")
        drawn += 1
    if not drawn:
        _pyplot().close(fig)
        return None
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length (tokens)")
    latency = "p50 time to first token (ms)" if task_generates(series) else "p50 forward latency (ms)"
    ax.set_ylabel("peak RSS while timing (MB)" if memory else latency)
    ax.set_title(f"{task}: {'memory' if memory else 'latency'} against input length (k: fitted exponent)")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def scaling_figures(by_task: dict[str, list[Series]], folder: Path) -> list[str]:
    """The latency and memory figures of every task with series over several lengths."""
    made = []
    for task, series in sorted(by_task.items()):
        made.append(plot_scaling(task, series, folder / f"scaling-{task}-latency.svg"))
        made.append(plot_scaling(task, series, folder / f"scaling-{task}-memory.svg", memory=True))
    return [m for m in made if m]
