"""Rewrite the expected report files from tests/golden/records (after an intended change of the report).

Run: python -m tests.golden.regenerate
"""

import shutil
import tempfile
from pathlib import Path

from bench.core.records import load_records
from bench.report.publish import publish

GOLDEN = Path(__file__).resolve().parent
GENERATED = "GENERATED-AT"
FILES = ("README.md", "results.csv")


def build(folder: Path, formats: tuple[str, ...] = ("md", "csv")) -> list[Path]:
    """The report of the golden records, into `folder`."""
    return publish(load_records([GOLDEN / "records"]), folder, formats, generated=GENERATED)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp))
        for name in FILES:
            shutil.copyfile(Path(tmp) / name, GOLDEN / "expected" / name)
            print(GOLDEN / "expected" / name)
