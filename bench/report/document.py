"""What every rendering of a report (Markdown, HTML) shows: the tables, where their records came from, when
the report was generated, and the figure files beside it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.report.provenance import Provenance
from bench.report.scaling import Series
from bench.report.table import GroupTable


@dataclass(frozen=True)
class Document:
    """One report's content, before it is rendered."""

    tables: Sequence[GroupTable]
    prov: Provenance
    generated: str
    images: dict[int, list[str]] = field(default_factory=dict)
    """Each table's figure files, by table index."""
    scaling: tuple[dict[str, list[Series]], list[str]] | None = None
    """The series over several input lengths, by task, and their figure files."""
