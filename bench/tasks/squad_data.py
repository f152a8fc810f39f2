"""Reading SQuAD-format question-answering data: official JSON, flat JSON lines, or a hub dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.core.errors import DataNotFoundError


def _flatten_official(data: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    try:
        for article in data["data"]:
            title = article.get("title", "")
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                for qa in paragraph["qas"]:
                    rows.append(
                        {
                            "id": str(qa["id"]),
                            "title": title,
                            "context": context,
                            "question": qa["question"],
                            "answers": [a["text"] for a in qa.get("answers", [])],
                            "answer_starts": [int(a["answer_start"]) for a in qa.get("answers", [])],
                        }
                    )
    except (KeyError, TypeError) as exc:
        raise DataNotFoundError(f"{path}: not in SQuAD v1.1 layout (missing {exc})") from None
    return rows


def _from_flat(row: dict[str, Any]) -> dict[str, Any]:
    """A row in the hub's flat layout: answers = {text: [...], answer_start: [...]}."""
    answers = row.get("answers") or {}
    return {
        "id": str(row["id"]),
        "title": row.get("title", ""),
        "context": row["context"],
        "question": row["question"],
        "answers": list(answers.get("text", [])),
        "answer_starts": [int(s) for s in answers.get("answer_start", [])],
    }


def load_squad(location: str, local: bool, split: str, limit: int | None) -> list[dict[str, Any]]:
    """The first `limit` questions of a split, in file order."""
    if local:
        path = Path(location)
        if path.is_dir():
            import datasets

            ds = datasets.load_from_disk(str(path))
            table = ds[split] if isinstance(ds, datasets.DatasetDict) else ds
            n = len(table) if limit is None else min(limit, len(table))
            rows = [_from_flat(table[i]) for i in range(n)]
        elif path.suffix == ".jsonl":
            with path.open(encoding="utf-8") as fh:
                rows = []
                for line in fh:
                    if line.strip():
                        rows.append(_from_flat(json.loads(line)))
                    if limit is not None and len(rows) >= limit:
                        break
        else:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise DataNotFoundError(f"{path}: cannot read SQuAD JSON: {exc}") from None
            rows = _flatten_official(data, path)
    else:
        import datasets

        n_split = split if limit is None else f"{split}[:{limit}]"
        table = datasets.load_dataset(location, split=n_split)
        rows = [_from_flat(r) for r in table]
    rows = rows if limit is None else rows[:limit]
    if not rows:
        raise DataNotFoundError(f"{location}: no questions in split '{split}'")
    return rows
