"""Every published report under reports/ is what bench makes of its records today: rebuilt from them, each file
is byte-identical apart from the generation timestamp."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.core.records import load_records
from bench.report.publish import publish

REPORTS = Path(__file__).resolve().parents[1] / "reports"
PUBLISHED = sorted(p.parent for p in REPORTS.glob("*/records"))
STAMP = re.compile(r"Generated at \S+ from")


def without_stamp(path: Path) -> bytes:
    return STAMP.sub("Generated at (time) from", path.read_text(encoding="utf-8")).encode()


def test_every_report_folder_keeps_its_records() -> None:
    assert {p.name for p in PUBLISHED} >= {"qa", "translation", "summarization", "tune-qa"}


@pytest.mark.parametrize("folder", PUBLISHED, ids=lambda p: p.name)
def test_a_published_report_rebuilds_from_its_records(folder: Path, tmp_path: Path) -> None:
    rebuilt = tmp_path / folder.name
    written = publish(load_records([folder / "records"]), rebuilt)
    assert written
    for path in sorted(rebuilt.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            assert without_stamp(path) == without_stamp(folder / path.name), f"{folder.name}/{path.name} differs"
