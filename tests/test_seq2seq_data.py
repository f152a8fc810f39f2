"""Reading parallel text and summarization files."""

import json
from pathlib import Path

import pytest

from bench.core.errors import DataNotFoundError
from bench.tasks.seq2seq_data import load_parallel, load_summaries, reference_file


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_wmt_layout_pairs_source_with_first_reference(tmp_path: Path) -> None:
    src = _write(tmp_path / "newstest.en-de.src.en", ["Hello.", "Good night."])
    _write(tmp_path / "newstest.en-de.ref.B.de", ["Servus.", "Nacht."])
    ref_a = _write(tmp_path / "newstest.en-de.ref.A.de", ["Hallo.", "Gute Nacht."])
    assert reference_file(src, "en", "de") == ref_a
    rows = load_parallel(str(src), True, "test", None, "en", "de")
    assert rows == [
        {"id": "newstest.en-de.src.en:0", "source": "Hello.", "reference": "Hallo."},
        {"id": "newstest.en-de.src.en:1", "source": "Good night.", "reference": "Gute Nacht."},
    ]
    assert len(load_parallel(str(src), True, "test", 1, "en", "de")) == 1


def test_reversed_direction_uses_the_original_side(tmp_path: Path) -> None:
    _write(tmp_path / "newstest.de-en.src.de", ["Hallo."])
    ref = _write(tmp_path / "newstest.de-en.ref.A.en", ["Hello."])
    assert load_parallel(str(ref), True, "train", None, "en", "de")[0]["reference"] == "Hallo."


def test_moses_layout_and_mismatched_files(tmp_path: Path) -> None:
    src = _write(tmp_path / "train.en", ["a", "b"])
    _write(tmp_path / "train.de", ["x"])
    with pytest.raises(DataNotFoundError, match="has 2 lines but"):
        load_parallel(str(src), True, "train", None, "en", "de")
    with pytest.raises(DataNotFoundError, match="no parallel 'fr' file"):
        reference_file(src, "en", "fr")


def test_jsonl_translation_mapping(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"id": "x", "translation": {"de": "Hallo", "en": "Hello"}}) + "\n")
    assert load_parallel(str(path), True, "test", None, "de", "en") == [
        {"id": "x", "source": "Hallo", "reference": "Hello"}
    ]
    with pytest.raises(DataNotFoundError, match="no 'fr'/'en' text"):
        load_parallel(str(path), True, "test", None, "fr", "en")


@pytest.mark.parametrize(("doc", "summary"), [("article", "highlights"), ("document", "summary")])
def test_summaries_detect_their_fields(tmp_path: Path, doc: str, summary: str) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), doc: f"text {i}", summary: f"sum {i}"}) + "\n" for i in range(3)))
    rows = load_summaries(str(path), True, "test", 2)
    assert rows == [
        {"id": "0", "source": "text 0", "reference": "sum 0"},
        {"id": "1", "source": "text 1", "reference": "sum 1"},
    ]


def test_summaries_with_unknown_fields_name_the_option(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"body": "t", "abstract": "s"}) + "\n")
    with pytest.raises(DataNotFoundError, match="source_field and target_field"):
        load_summaries(str(path), True, "test", None)
    assert load_summaries(str(path), True, "test", None, "body", "abstract")[0]["reference"] == "s"


def test_real_wmt_and_cnn_files(shared_data: Path) -> None:
    rows = load_parallel(str(shared_data / "wmt/newstest2021.en-de.src.en"), True, "test", None, "en", "de")
    assert len(rows) == 1002 and rows[1]["reference"].startswith("Masken-Shaming")
    cnn = load_summaries(str(shared_data / "summarization/cnn_dailymail-test-sample.jsonl"), True, "test", None)
    assert len(cnn) == 250 and all(r["source"] and r["reference"] for r in cnn)


def test_dataset_saved_by_datasets_library(tmp_path: Path) -> None:
    """The layout of hub datasets (wmt16: a `translation` mapping; cnn_dailymail: article/highlights),
    saved with save_to_disk as an online user would cache them."""
    import datasets

    pairs = datasets.Dataset.from_list([{"translation": {"de": f"Hallo {i}", "en": f"Hello {i}"}} for i in range(3)])
    datasets.DatasetDict({"test": pairs}).save_to_disk(str(tmp_path / "wmt"))
    rows = load_parallel(str(tmp_path / "wmt"), True, "test", 2, "en", "de")
    assert rows == [
        {"id": "0", "source": "Hello 0", "reference": "Hallo 0"},
        {"id": "1", "source": "Hello 1", "reference": "Hallo 1"},
    ]
    news = datasets.Dataset.from_list([{"id": "a", "article": "Long text.", "highlights": "Short."}])
    news.save_to_disk(str(tmp_path / "cnn"))
    assert load_summaries(str(tmp_path / "cnn"), True, "test", None) == [
        {"id": "a", "source": "Long text.", "reference": "Short."}
    ]
