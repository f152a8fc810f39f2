"""Generation metrics against sacrebleu's and rouge-score's own results on fixed strings."""

import pytest
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

from bench.tasks.generation_metrics import (
    ROUGE_TYPES,
    bleu_chrf,
    length_metrics,
    rouge,
    rouge_per_example,
    sentence_chrf,
    split_sentences,
)

HYPS = [
    "The cat sat on the mat.",
    "A quick brown fox jumps over the lazy dog",
    "Er ging gestern nach Hause.",
]
REFS = [
    "The cat was sitting on the mat.",
    "The quick brown fox jumped over the lazy dog.",
    "Gestern ging er nach Hause.",
]


def test_bleu_and_chrf_equal_sacrebleu_with_signatures() -> None:
    scores = bleu_chrf(HYPS, REFS)
    bleu, chrf = BLEU(), CHRF()
    assert scores["bleu"].value == pytest.approx(bleu.corpus_score(HYPS, [REFS]).score)
    assert scores["chrf"].value == pytest.approx(chrf.corpus_score(HYPS, [REFS]).score)
    assert scores["bleu"].signature == str(bleu.get_signature())
    assert "tok:13a" in (scores["bleu"].signature or "") and "nc:6" in (scores["chrf"].signature or "")
    assert 0 < scores["bleu"].value < 100 and scores["bleu"].higher_is_better


def test_identical_outputs_score_100() -> None:
    assert bleu_chrf(REFS, REFS)["bleu"].value == pytest.approx(100.0)
    assert rouge(REFS, REFS)["rougeL"].value == pytest.approx(100.0)
    assert rouge_per_example("", "") == dict.fromkeys(ROUGE_TYPES, 100.0)


def test_sentence_chrf_equals_sacrebleu() -> None:
    assert sentence_chrf(HYPS[0], REFS[0]) == pytest.approx(CHRF().sentence_score(HYPS[0], [REFS[0]]).score)


def test_rouge_equals_rouge_score_with_stemming_and_sentence_split_lsum() -> None:
    summary = "Police arrested two men. They were charged with theft! The court meets in May."
    reference = "Two men were arrested by police.\nBoth are charged with thefts."
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    expected = scorer.score(
        "Two men were arrested by police.\nBoth are charged with thefts.",
        "Police arrested two men.\nThey were charged with theft!\nThe court meets in May.",
    )
    got = rouge_per_example(summary, reference)
    for name in ROUGE_TYPES:
        assert got[name] == pytest.approx(100 * expected[name].fmeasure)
    # stemming: "thefts" matches "theft", "arrested" matches "arrest"
    unstemmed = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=False).score(reference, summary)["rouge1"]
    assert got["rouge1"] > 100 * unstemmed.fmeasure
    # Lsum works on sentences: the same sentences in another order keep Lsum at 100, not L
    swapped = rouge_per_example("Bees make honey. Ants carry leaves.", "Ants carry leaves. Bees make honey.")
    assert swapped["rougeLsum"] == pytest.approx(100.0) and swapped["rougeL"] < 100.0
    corpus = rouge([summary, HYPS[0]], [reference, REFS[0]])
    assert corpus["rouge2"].value == pytest.approx((got["rouge2"] + rouge_per_example(HYPS[0], REFS[0])["rouge2"]) / 2)
    assert "stemmer:porter" in (corpus["rouge1"].signature or "")


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("One. Two! Three?", ["One.", "Two!", "Three?"]),
        (
            "Mr. smith left. He said 'hi.' Then 3 people came.",
            ["Mr. smith left.", "He said 'hi.'", "Then 3 people came."],
        ),
        ("line one\nline two.", ["line one", "line two."]),
        ("", []),
    ],
)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


def test_length_metrics_have_no_direction() -> None:
    metrics = length_metrics(["a b", "c d e f"], ["a b c d", "e f g h"])
    assert metrics["output_words"].value == 3.0 and metrics["reference_words"].value == 4.0
    assert metrics["length_ratio"].value == pytest.approx(6 / 8)
    assert metrics["length_ratio"].higher_is_better is None


def test_mismatched_lengths_are_an_error() -> None:
    with pytest.raises(ValueError, match="2 outputs but 1 references"):
        bleu_chrf(["a", "b"], ["a"])
