"""Metrics of generated text: BLEU and chrF by sacrebleu (standard settings, signature kept), ROUGE by
rouge-score (stemming; ROUGE-Lsum over sentence-split text), and output length against the references.

Pure functions over strings; sacrebleu and rouge-score are imported when called.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bench.core.metrics import MetricValue

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
# A sentence ends at . ! or ? (optionally closed by a quote or bracket) before white space and a capital,
# digit or opening quote. rouge-score's own splitter needs nltk's punkt data, which is not available offline.
_SENTENCE_END = re.compile(r"([.!?][\"'”’)\]]*)\s+(?=[\"'“‘(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`: existing line breaks are kept as boundaries, then split at sentence ends."""
    sentences: list[str] = []
    for line in text.splitlines():
        marked = _SENTENCE_END.sub("\\1\n", line.strip())
        sentences.extend(s.strip() for s in marked.split("\n") if s.strip())
    return sentences


def bleu_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, MetricValue]:
    """Corpus BLEU and chrF with sacrebleu's defaults (13a tokenization, exp smoothing; chrF2),
    each with its signature."""
    from sacrebleu.metrics import BLEU, CHRF

    _same_length(hypotheses, references)
    bleu, chrf = BLEU(), CHRF()
    bleu_score = bleu.corpus_score(list(hypotheses), [list(references)])
    chrf_score = chrf.corpus_score(list(hypotheses), [list(references)])
    return {
        "bleu": MetricValue(value=bleu_score.score, signature=str(bleu.get_signature())),
        "chrf": MetricValue(value=chrf_score.score, signature=str(chrf.get_signature())),
    }


def sentence_chrf(hypothesis: str, reference: str) -> float:
    """chrF of one segment (for per-example rows; corpus chrF is not their mean)."""
    from sacrebleu.metrics import CHRF

    return float(CHRF().sentence_score(hypothesis, [reference]).score)


def rouge_per_example(prediction: str, reference: str) -> dict[str, float]:
    """F-measures (0..100) of ROUGE-1/2/L/Lsum for one pair, with the Porter stemmer."""
    from rouge_score import rouge_scorer

    if prediction.strip() == reference.strip():  # also two empty strings, which rouge-score scores 0
        return dict.fromkeys(ROUGE_TYPES, 100.0)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    scores = scorer.score(
        "\n".join(split_sentences(reference)) or reference, "\n".join(split_sentences(prediction)) or prediction
    )
    return {name: 100.0 * scores[name].fmeasure for name in ROUGE_TYPES}


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, MetricValue]:
    """Mean ROUGE-1/2/L/Lsum F-measures in percent (rouge-score, stemming, Lsum on split sentences)."""
    _same_length(predictions, references)
    if not predictions:
        raise ValueError("no examples to score")
    rows = [rouge_per_example(p, r) for p, r in zip(predictions, references, strict=True)]
    signature = "rouge-score|stemmer:porter|lsum:sentence-split|fmeasure"
    return {
        name: MetricValue(value=sum(r[name] for r in rows) / len(rows), signature=signature) for name in ROUGE_TYPES
    }


def length_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, MetricValue]:
    """Output length in words against the references: mean lengths and their ratio (1.0 = as long)."""
    _same_length(predictions, references)
    pred_words = [len(p.split()) for p in predictions]
    ref_words = [len(r.split()) for r in references]
    n = max(1, len(predictions))
    return {
        "output_words": MetricValue(value=sum(pred_words) / n, higher_is_better=None),
        "reference_words": MetricValue(value=sum(ref_words) / n, higher_is_better=None),
        "length_ratio": MetricValue(value=sum(pred_words) / max(1, sum(ref_words)), higher_is_better=None),
    }


def _same_length(a: Sequence[str], b: Sequence[str]) -> None:
    if len(a) != len(b):
        raise ValueError(f"{len(a)} outputs but {len(b)} references")
