import pytest

from bench.core.metrics import exact_match, normalize_answer, squad_scores, token_f1
from bench.tasks.qa import qa_agreement


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  an   apple, a pear ", "apple pear"),
        ("Theatre", "theatre"),  # 'the' only as a whole word
        ("U.S.A.", "usa"),
        ("", ""),
    ],
)
def test_normalize_answer(raw: str, normalized: str) -> None:
    assert normalize_answer(raw) == normalized


def test_exact_match_ignores_case_articles_punctuation() -> None:
    assert exact_match("the Eiffel tower.", "Eiffel Tower") == 1.0
    assert exact_match("Eiffel", "Eiffel Tower") == 0.0


def test_f1_hand_worked() -> None:
    # prediction "eiffel tower in paris" (4 tokens) vs truth "eiffel tower" (2): common 2
    # precision 2/4, recall 2/2 -> F1 = 2 * 0.5 * 1 / 1.5 = 2/3
    assert token_f1("the Eiffel tower in Paris", "Eiffel Tower") == pytest.approx(2 / 3)
    # repeated tokens count with multiplicity: "a b b" vs "b b c": common {b: 2}
    assert token_f1("x y y", "y y z") == pytest.approx(2 / 3)
    assert token_f1("nothing shared", "else") == 0.0
    # a truth that normalises to nothing shares no token
    assert token_f1("the", "an") == 0.0


def test_squad_scores_take_the_best_gold_answer() -> None:
    scores = squad_scores(
        [
            ("1889", ["in 1889", "1889"]),  # EM via the second answer
            ("Gustave", ["Gustave Eiffel"]),  # F1 = 2 * 1 * 0.5 / 1.5 = 2/3
            ("London", ["Paris"]),
        ]
    )
    assert scores["exact_match"].value == pytest.approx(100 / 3)
    assert scores["f1"].value == pytest.approx(100 * (1 + 2 / 3 + 0) / 3)
    assert scores["f1"].higher_is_better


def test_squad_scores_need_examples() -> None:
    with pytest.raises(ValueError):
        squad_scores([])


def test_agreement_compares_shared_ids_only() -> None:
    base = [
        {"id": "a", "prediction": "Paris"},
        {"id": "b", "prediction": "1889"},
        {"id": "c", "prediction": "x"},
    ]
    pred = [{"id": "a", "prediction": "paris."}, {"id": "b", "prediction": "in 1889"}]
    agree = qa_agreement(pred, base)
    assert agree["exact_agreement"].value == pytest.approx(50.0)
    assert agree["f1_agreement"].value == pytest.approx(100 * (1 + 2 / 3) / 2)
