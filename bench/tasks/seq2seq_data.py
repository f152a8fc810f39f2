"""Reading source/reference pairs for generation tasks.

Translation: parallel plain-text files (one segment a line), JSON lines with a `translation` mapping
({"en": ..., "de": ...}) or `source`/`target` fields, a folder saved by `datasets`, or a hub dataset
such as wmt16 (config "de-en"). Summarization: JSON lines or hub datasets with a document field and a
summary field (article/highlights for CNN/DailyMail, document/summary for XSum, auto-detected).

Every row is {"id", "source", "reference"}.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bench.core.errors import DataNotFoundError

_ROLE = re.compile(r"\.(src|source|ref|reference)(\.[A-Za-z0-9]+)?$")
# (document field, summary field) pairs of the common summarization datasets, tried in order.
SUMMARY_FIELDS = (("article", "highlights"), ("document", "summary"), ("text", "summary"), ("source", "target"))


def _take(rows: Iterable[dict[str, Any]], limit: int | None, where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in rows:
        if limit is not None and len(out) >= limit:
            break
        out.append(row)
    if not out:
        raise DataNotFoundError(f"{where}: no examples")
    return out


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataNotFoundError(f"{path}:{n}: not JSON: {exc}") from None


def _hub_or_disk(location: str, local: bool, split: str, limit: int | None, config: str | None = None) -> Any:
    import datasets

    if local:
        ds = datasets.load_from_disk(location)
        table = ds[split] if isinstance(ds, datasets.DatasetDict) else ds
        return table.select(range(min(limit, len(table)))) if limit is not None else table
    n_split = split if limit is None else f"{split}[:{limit}]"
    try:
        return datasets.load_dataset(location, config, split=n_split)
    except ValueError:
        if config is None:
            raise
        reverse = "-".join(reversed(config.split("-")))  # wmt16 names de-en only, for both directions
        return datasets.load_dataset(location, reverse, split=n_split)


def reference_file(source_file: Path, source_lang: str, target_lang: str) -> Path:
    """The file parallel to `source_file` in the target language.

    `newstest2021.en-de.src.en` pairs with `newstest2021.en-de.ref.A.de` (the first reference when there
    are several, or a `.src.de` original); `train.en` pairs with `train.de`.
    """
    name = source_file.name
    if not name.endswith(f".{source_lang}"):
        raise DataNotFoundError(f"{source_file}: a source file's name ends with '.{source_lang}' (the source language)")
    stem = _ROLE.sub("", name[: -len(source_lang) - 1])
    candidates = sorted(
        p
        for p in source_file.parent.glob(f"{stem}.*{target_lang}")
        if p != source_file and p.name.endswith(f".{target_lang}")
    )
    refs = [p for p in candidates if ".ref" in p.name[len(stem) :]] or candidates
    if not refs:
        raise DataNotFoundError(
            f"{source_file}: no parallel '{target_lang}' file beside it (looked for {stem}.ref*.{target_lang}, "
            f"{stem}.src.{target_lang} and {stem}.{target_lang})"
        )
    return refs[0]


def load_parallel(
    location: str, local: bool, split: str, limit: int | None, source_lang: str, target_lang: str
) -> list[dict[str, Any]]:
    """The first `limit` segment pairs of a translation split."""
    path = Path(location)
    if local and path.is_file() and path.suffix != ".jsonl":
        ref = reference_file(path, source_lang, target_lang)
        with path.open(encoding="utf-8") as src, ref.open(encoding="utf-8") as tgt:
            sources, references = src.read().splitlines(), tgt.read().splitlines()
        if len(sources) != len(references):
            raise DataNotFoundError(f"{path} has {len(sources)} lines but {ref} has {len(references)}")
        rows: Iterable[dict[str, Any]] = (
            {"id": f"{path.name}:{i}", "source": s, "reference": r}
            for i, (s, r) in enumerate(zip(sources, references, strict=True))
        )
        return _take(rows, limit, location)
    if local and path.is_file():
        raw: Iterable[dict[str, Any]] = _jsonl(path)
    else:
        raw = _hub_or_disk(location, local, split, limit, f"{source_lang}-{target_lang}")

    def pairs() -> Iterator[dict[str, Any]]:
        for i, row in enumerate(raw):
            pair = row.get("translation") or {source_lang: row.get("source"), target_lang: row.get("target")}
            if pair.get(source_lang) is None or pair.get(target_lang) is None:
                raise DataNotFoundError(
                    f"{location}: row {i} has no '{source_lang}'/'{target_lang}' text "
                    "(expected a `translation` mapping or `source`/`target` fields)"
                )
            yield {"id": str(row.get("id", i)), "source": pair[source_lang], "reference": pair[target_lang]}

    return _take(pairs(), limit, location)


def summary_fields(row: dict[str, Any], where: str) -> tuple[str, str]:
    """The (document, summary) field names of a summarization row."""
    for doc, summary in SUMMARY_FIELDS:
        if doc in row and summary in row:
            return doc, summary
    raise DataNotFoundError(
        f"{where}: cannot tell the document and summary fields among {sorted(row)}; "
        "set task.options.source_field and target_field"
    )


def load_summaries(
    location: str,
    local: bool,
    split: str,
    limit: int | None,
    source_field: str | None = None,
    target_field: str | None = None,
) -> list[dict[str, Any]]:
    """The first `limit` (document, summary) pairs of a summarization split."""
    path = Path(location)
    raw: Iterable[dict[str, Any]] = (
        _jsonl(path) if local and path.is_file() else _hub_or_disk(location, local, split, limit, None)
    )

    def rows() -> Iterator[dict[str, Any]]:
        fields: tuple[str, str] | None = None
        for i, row in enumerate(raw):
            if fields is None:
                fields = (
                    (source_field, target_field) if source_field and target_field else summary_fields(row, location)
                )
            doc, summary = fields
            if doc not in row or summary not in row:
                raise DataNotFoundError(f"{location}: row {i} has no '{doc}' or '{summary}' field")
            yield {"id": str(row.get("id", i)), "source": row[doc], "reference": row[summary]}

    return _take(rows(), limit, location)
