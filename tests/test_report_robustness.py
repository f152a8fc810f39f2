"""One bad file never aborts a report: unreadable records and predictions, crafted paths, the output folder,
and text that would act on a terminal or a spreadsheet."""

import json
import shutil
from pathlib import Path

from bench.core.records import load_records
from bench.report.publish import MARKER, publish
from tests.golden.regenerate import GOLDEN

from .test_cli import bench


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "records"
    shutil.copytree(GOLDEN / "records", folder)
    return folder


def test_unreadable_files_are_skipped_and_listed_in_the_report(tmp_path: Path) -> None:
    records = _copy(tmp_path)
    (records / "binary.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    predictions = next(records.glob("distill__*.predictions.jsonl"))
    predictions.write_bytes(b'{"id": "x", "prediction": \xff\n[1, 2]\n')
    result = bench("report", str(records), "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "binary.json: unreadable record: UnicodeDecodeError" in result.stderr
    assert f"{predictions.name}: unreadable predictions" in result.stderr
    readme = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "- Skipped files (2): " in readme and "binary.json" in readme and predictions.name in readme
    assert "Skipped files (2)" in (tmp_path / "out" / "index.html").read_text(encoding="utf-8")


def test_a_record_cannot_point_the_report_at_another_file(tmp_path: Path) -> None:
    records = _copy(tmp_path)
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"id": "newstest2021.en-de.src.en:0", "prediction": "stolen", "reference": "x"}\n')
    path = next(records.glob("distill__*.json"))
    record = json.loads(path.read_text())
    record["accuracy"]["predictions_file"] = "../secret.jsonl"
    path.write_text(json.dumps(record))
    loaded = load_records([records])
    target = next(r for r in loaded.records if r.spec.compressor.display_name == "distill")
    assert loaded.predictions(target) is None
    assert any("is not a file beside the record" in line for line in loaded.unreadable)


def test_the_output_folder_is_refused_when_it_is_not_a_report(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("# my project\n")
    result = bench("report", str(GOLDEN / "records"), "-o", str(project))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--force" in result.stderr
    assert (project / "README.md").read_text() == "# my project\n"
    forced = bench("report", str(GOLDEN / "records"), "-o", str(project), "--force")
    assert forced.returncode == 0 and (project / MARKER).is_file()


def test_a_report_folder_is_replaced_without_leftovers(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = publish(load_records([GOLDEN / "records"]), out)
    assert (out / MARKER).read_text().split() == [p.name for p in first]
    (out / "notes.txt").write_text("mine")  # not bench's: kept
    fewer = _copy(tmp_path)
    for path in fewer.glob("*seq256*"):
        path.unlink()
    second = publish(load_records([fewer]), out)
    assert len(second) < len(first)
    assert sorted(p.name for p in out.iterdir() if p.name != "notes.txt") == sorted([MARKER, *(p.name for p in second)])
    assert not list(tmp_path.glob(".out.*"))  # the staging folder is gone


def test_control_sequences_and_formulas_are_neutralised(tmp_path: Path) -> None:
    records = _copy(tmp_path)
    path = next(records.glob("bnb-int8__*.json"))
    record = json.loads(path.read_text())
    record["error"]["message"] = '\x1b[2J\x1b[31mred\x1b[0m =HYPERLINK("http://x")'
    path.write_text(json.dumps(record))
    out = tmp_path / "out"
    assert bench("report", str(records), "-o", str(out)).returncode == 0
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "\x1b" not in readme and "red =HYPERLINK" in readme
    csv = (out / "results.csv").read_text(encoding="utf-8")
    assert "\x1b" not in csv and ",'red =HYPERLINK" not in csv  # the cell starts with 'red', not a formula
    record["error"]["message"] = '=HYPERLINK("http://x")'
    path.write_text(json.dumps(record))
    assert bench("report", str(records), "-o", str(out)).returncode == 0
    assert "'=HYPERLINK" in (out / "results.csv").read_text(encoding="utf-8")


def test_paths_with_markup_are_printed_as_they_are(tmp_path: Path) -> None:
    odd = tmp_path / "[/x]results"
    shutil.copytree(GOLDEN / "records", odd)
    result = bench("compare", str(odd), str(odd))
    assert result.returncode == 0, result.stderr
    assert "[/x]results" in result.stdout


def test_console_text_has_no_markup_or_control_sequences() -> None:
    from rich.console import Console

    from bench.report.text import for_console

    console = Console(record=True, width=200)
    console.print(for_console("\x1b[2J\x1b[31m[/x] [bold]label\x07"))
    assert console.export_text().strip() == "[/x] [bold]label"


def test_a_record_without_environment_from_the_same_machine_is_one_machine() -> None:
    from bench.report.provenance import provenance

    records = load_records([GOLDEN / "records"]).records
    bare = records[0].model_copy(update={"environment": None})
    assert len(provenance([*records[1:], bare]).machines) == len(provenance(records).machines) == 1
    other = bare.model_copy(update={"machine": "another-box"})
    assert len(provenance([*records, other]).machines) == 2
