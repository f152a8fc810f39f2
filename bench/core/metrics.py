"""Pure metric functions. Each metric carries its direction (higher is better or not).

The SQuAD functions follow the official v1.1 evaluation script exactly: answers are normalised
(lower case, punctuation removed, the articles a/an/the removed, white space collapsed), and an
example scores the maximum over its gold answers.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from pydantic import BaseModel

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


class MetricValue(BaseModel):
    """One metric's value and its direction."""

    value: float
    higher_is_better: bool | None = True
    """None: no better direction (an output length, where closest to the reference is best)."""
    signature: str | None = None
    """How the metric was computed, where its library defines one (sacrebleu's signature)."""


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and articles, and collapse white space (SQuAD v1.1)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(truth))


def token_f1(prediction: str, truth: str) -> float:
    """Bag-of-tokens F1 between the normalised strings (SQuAD v1.1)."""
    pred_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(truth).split()
    common = Counter(pred_tokens) & Counter(truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def max_over_truths(metric: Callable[[str, str], float], prediction: str, truths: Sequence[str]) -> float:
    """The best score of `prediction` against any of the gold `truths` (0.0 when there are none)."""
    if not truths:
        return 0.0
    return max(metric(prediction, t) for t in truths)


def squad_scores(pairs: Iterable[tuple[str, Sequence[str]]]) -> dict[str, MetricValue]:
    """EM and F1 in percent over (prediction, gold answers) pairs."""
    em_total = 0.0
    f1_total = 0.0
    n = 0
    for prediction, truths in pairs:
        em_total += max_over_truths(exact_match, prediction, truths)
        f1_total += max_over_truths(token_f1, prediction, truths)
        n += 1
    if n == 0:
        raise ValueError("no examples to score")
    return {
        "exact_match": MetricValue(value=100.0 * em_total / n),
        "f1": MetricValue(value=100.0 * f1_total / n),
    }


def per_example_squad(prediction: str, truths: Sequence[str]) -> dict[str, float]:
    """EM and F1 (0..1) of one example, for storing beside its prediction."""
    return {
        "exact_match": max_over_truths(exact_match, prediction, truths),
        "f1": max_over_truths(token_f1, prediction, truths),
    }
