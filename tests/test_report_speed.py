"""Benchmark (pytest-benchmark): `bench report` over a few hundred records. The figure goes in the
closing notes; the test checks that every record reaches the report."""

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.core.records import load_records
from bench.report.publish import publish
from tests.golden.regenerate import GOLDEN

pytestmark = pytest.mark.slow
GROUPS = 40


def make_records(folder: Path, groups: int = GROUPS) -> int:
    """`groups` copies of the golden records, each copy its own group (another batch size)."""
    count = 0
    for g in range(groups):
        target = folder / f"set{g:03d}"
        shutil.copytree(GOLDEN / "records", target)
        for path in target.glob("*.json"):
            record = json.loads(path.read_text())
            record["spec"]["group"] = f"{record['spec']['group']}-{g}"
            record["spec"]["batch_size"] = g + 1
            path.write_text(json.dumps(record))
            count += 1
    return count


def test_report_over_hundreds_of_records(benchmark: Any, tmp_path: Path) -> None:
    n = make_records(tmp_path / "records")
    assert n >= 300

    def build() -> list[Path]:
        return publish(load_records([tmp_path / "records"]), tmp_path / "report", ("html", "md", "csv"))

    written = benchmark.pedantic(build, rounds=1, iterations=1)
    assert tmp_path / "report" / "index.html" in written
    assert len(pd.read_csv(tmp_path / "report" / "results.csv")) == n
    benchmark.extra_info["records"] = n
    benchmark.extra_info["seconds_per_record"] = benchmark.stats.stats.mean / n
