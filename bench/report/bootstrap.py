"""Bootstrap confidence intervals for the differences a report shows.

- Accuracy: a paired bootstrap over the evaluation examples shared with the baseline. Metrics that are
  means of per-example scores (SQuAD EM/F1, ROUGE) resample those scores; corpus metrics (BLEU, chrF)
  resample sacrebleu's per-segment sufficient statistics and recompute the corpus score, as sacrebleu's
  own paired bootstrap does.
- Latency: the raw samples of each run are resampled independently, giving an interval for the
  percent change of the median; rows timed in interleaved rounds resample rounds, then samples (paired
  by round when two rows shared their rounds), widened for the few rounds a run has.

Resampling is seeded, so a report is the same every time it is built from the same records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.core.latency import LatencyResult

RESAMPLES = 1000
LEVEL = 0.95
SEED = 20261121

# metric name -> per-example field and its scale to the metric's unit
PER_EXAMPLE: dict[str, tuple[str, float]] = {
    "exact_match": ("exact_match", 100.0),
    "f1": ("f1", 100.0),
    "rouge1": ("rouge1", 1.0),
    "rouge2": ("rouge2", 1.0),
    "rougeL": ("rougeL", 1.0),
    "rougeLsum": ("rougeLsum", 1.0),
}
CORPUS = ("bleu", "chrf")


@dataclass(frozen=True)
class Interval:
    """A difference (new minus baseline, or percent change) with its bootstrap interval."""

    delta: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero."""
        return self.low > 0 or self.high < 0


def _bounds(values: np.ndarray) -> tuple[float, float]:
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _indices(n: int, seed_offset: int = 0) -> np.ndarray:
    rng = np.random.default_rng(SEED + seed_offset)
    return rng.integers(0, n, size=(RESAMPLES, n))


def paired_mean_delta(base: Sequence[float], new: Sequence[float], scale: float = 1.0) -> Interval:
    """Difference of means (new - base) of paired per-example scores, with its interval."""
    b, n = np.asarray(base, dtype=float) * scale, np.asarray(new, dtype=float) * scale
    if b.shape != n.shape or b.size == 0:
        raise ValueError("paired scores must be non-empty and of equal length")
    diff = n - b
    resampled = diff[_indices(diff.size)].mean(axis=1)
    return Interval(float(diff.mean()), *_bounds(resampled))


def paired_corpus_delta(base: np.ndarray, new: np.ndarray, score: Callable[[np.ndarray], float]) -> Interval:
    """Difference of a corpus metric computed from summed per-example statistics (rows: examples)."""
    if base.shape != new.shape or base.shape[0] == 0:
        raise ValueError("paired statistics must be non-empty and of equal shape")
    idx = _indices(base.shape[0])
    deltas = np.array([score(new[i].sum(axis=0)) - score(base[i].sum(axis=0)) for i in idx])
    return Interval(score(new.sum(axis=0)) - score(base.sum(axis=0)), *_bounds(deltas))


def sacrebleu_statistics(metric: str, hypotheses: Sequence[str], references: Sequence[str]) -> tuple[Any, Any]:
    """Per-segment sufficient statistics and a function scoring summed statistics (sacrebleu)."""
    from sacrebleu.metrics import BLEU, CHRF

    scorer = BLEU() if metric == "bleu" else CHRF()
    stats = np.asarray(scorer._extract_corpus_statistics(list(hypotheses), [list(references)]), dtype=float)

    def score(summed: np.ndarray) -> float:
        return float(scorer._compute_score_from_stats(summed.tolist()).score)

    return stats, score


STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "p50": lambda a: np.median(a, axis=-1),
    "p90": lambda a: np.percentile(a, 90, axis=-1),
    "p99": lambda a: np.percentile(a, 99, axis=-1),
    "mean": lambda a: np.mean(a, axis=-1),
    "rate": lambda a: 1.0 / np.mean(a, axis=-1),
}
"""Statistics of raw latency samples whose change can be bootstrapped; `rate` is throughput (1 / mean)."""


def statistic_change(base: Sequence[float], new: Sequence[float], statistic: str = "p50") -> Interval:
    """Percent change of a statistic of the samples (new vs base), with an interval from resampling both
    sample sets independently."""
    b, n = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    if b.size == 0 or n.size == 0:
        raise ValueError("no samples")
    stat = STATISTICS[statistic]
    base_values = stat(b[_indices(b.size, 1)])
    new_values = stat(n[_indices(n.size, 2)])
    changes = 100.0 * (new_values - base_values) / base_values
    point_base, point_new = float(stat(b)), float(stat(n))
    return Interval(100.0 * (point_new - point_base) / point_base, *_bounds(changes))


def rounds_change(
    base: Sequence[Sequence[float]], new: Sequence[Sequence[float]], statistic: str = "p50", paired: bool = False
) -> Interval:
    """Percent change of a statistic of samples timed in rounds (new vs base), with an interval from a
    two-stage bootstrap: rounds are resampled, then the samples of each chosen round, so that the interval
    holds the spread between rounds as well as within them. `paired`: both were timed in the same rounds,
    so each resample picks the same rounds for both (a drift common to a round cancels)."""
    b, n = [np.asarray(r, dtype=float) for r in base if len(r)], [np.asarray(r, dtype=float) for r in new if len(r)]
    if not b or not n:
        raise ValueError("no samples")
    if paired and len(b) != len(n):
        raise ValueError("paired rounds must be as many on both sides")
    stat = STATISTICS[statistic]
    rng = np.random.default_rng(SEED + 3)

    def resample(rounds: list[np.ndarray], picks: np.ndarray) -> float:
        chosen = [rounds[i] for i in picks]
        return float(stat(np.concatenate([r[rng.integers(0, r.size, r.size)] for r in chosen])))

    changes = np.empty(RESAMPLES)
    for i in range(RESAMPLES):
        picks = rng.integers(0, len(b), len(b))
        other = picks if paired else rng.integers(0, len(n), len(n))
        base_value = resample(b, picks)
        changes[i] = 100.0 * (resample(n, other) - base_value) / base_value
    point_base, point_new = float(stat(np.concatenate(b))), float(stat(np.concatenate(n)))
    point = 100.0 * (point_new - point_base) / point_base
    low, high = _bounds(changes)
    widen = few_rounds_widening(min(len(b), len(n)))
    return Interval(point, min(low, point - widen * (point - low)), max(high, point + widen * (high - point)))


T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131)
"""Student's t 97.5% quantiles for 1..15 degrees of freedom (beyond: the normal's 1.96)."""
Z_975 = 1.959964


def few_rounds_widening(rounds: int) -> float:
    """How much wider a 95% interval resampled from `rounds` rounds must be to hold 95%: a bootstrap over a
    handful of rounds sees (n-1)/n of their variance and takes normal quantiles where Student's t with n-1
    degrees of freedom applies (Hesterberg's expanded percentile interval, in its normal form): 1.58x for 5
    rounds, 1.22x for 10; 1 for a single window, whose spread is its samples'."""
    if rounds < 2:
        return 1.0
    t = T_975[rounds - 2] if rounds - 2 < len(T_975) else Z_975
    return float(np.sqrt(rounds / (rounds - 1)) * t / Z_975)


def latency_change(base: LatencyResult, new: LatencyResult, statistic: str = "p50", paired: bool = False) -> Interval:
    """The change of a latency statistic between two timings, with the interval their sampling allows: over
    rounds when either was timed in rounds (paired when both were timed in the same ones), else over the
    samples of each window."""
    if base.rounds_ms is None and new.rounds_ms is None:
        return statistic_change(base.samples_ms, new.samples_ms, statistic)
    return rounds_change(base.rounds_ms or [base.samples_ms], new.rounds_ms or [new.samples_ms], statistic, paired)


def median_change(base: Sequence[float], new: Sequence[float]) -> Interval:
    """Percent change of the median (new vs base) with an interval from resampling both sample sets."""
    return statistic_change(base, new, "p50")


def has_interval(metric: str) -> bool:
    """Whether `accuracy_delta` can give `metric` a paired interval (from rows that carry its fields)."""
    return metric in PER_EXAMPLE or metric in CORPUS


def accuracy_delta(
    metric: str, base_rows: Sequence[Mapping[str, Any]], new_rows: Sequence[Mapping[str, Any]]
) -> Interval | None:
    """The paired interval of `metric` between two runs' prediction rows (None when the rows do not
    carry what the metric needs)."""
    base = {r["id"]: r for r in base_rows}
    pairs = [(base[r["id"]], r) for r in new_rows if r.get("id") in base]
    if len(pairs) < 2:
        return None
    if metric in PER_EXAMPLE:
        field, scale = PER_EXAMPLE[metric]
        if not all(field in b and field in n for b, n in pairs):
            return None
        return paired_mean_delta([b[field] for b, _ in pairs], [n[field] for _, n in pairs], scale)
    if metric in CORPUS and all("reference" in b and "prediction" in b for b, _ in pairs):
        refs = [str(b["reference"]) for b, _ in pairs]
        base_stats, score = sacrebleu_statistics(metric, [str(b["prediction"]) for b, _ in pairs], refs)
        new_stats, _ = sacrebleu_statistics(metric, [str(n["prediction"]) for _, n in pairs], refs)
        return paired_corpus_delta(base_stats, new_stats, score)
    return None
