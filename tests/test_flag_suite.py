"""`bench run --model M --task T --compressor C`: a suite built from the task's defaults, validated like a file,
written out with --save-suite; and the fast set's one end-to-end run of bench on real SQuAD questions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.config import load_suite
from bench.core.errors import BenchError
from bench.flag_suite import SuiteFlags, compressor_row, suite_from_flags, suite_name

REPO = Path(__file__).resolve().parents[1]


def bench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], capture_output=True, text=True, timeout=600, cwd=cwd or REPO
    )


def test_a_suite_from_flags_takes_the_task_defaults_and_puts_the_baseline_first() -> None:
    suite, mapping = suite_from_flags(SuiteFlags("org/some-model", "qa", ["nncf-int8", "int8-dynamic-ort"], 200))
    assert [c.display_name for c in suite.compressors] == ["baseline", "nncf-int8", "int8-dynamic-ort"]
    assert suite.compressors[2].name == "int8-dynamic" and suite.compressors[2].config == {"backend": "onnxruntime"}
    assert (suite.task.dataset, suite.task.split, suite.task.limit) == ("squad", "validation", 200)
    assert suite.sequence_lengths == [384] and suite.name == "some-model-qa"
    assert mapping["model"] == {"id": "org/some-model"}  # a hub id stays a hub id
    translation, _ = suite_from_flags(SuiteFlags("m", "translation", [], None))
    assert translation.task.config == {"source_lang": "en", "target_lang": "de"}


def test_compressor_settings_ride_on_the_flag() -> None:
    row = compressor_row("int8-static:calibration_samples=64,method=percentile")
    assert row["name"] == "int8-static" and row["config"] == {"calibration_samples": 64, "method": "percentile"}
    assert compressor_row("bf16") == {"name": "bf16"}
    with pytest.raises(BenchError, match="key=value"):
        compressor_row("int8-static:64")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (SuiteFlags("m", "qa", ["int8-dynamc"]), "--compressor int8-dynamc: unknown compressor .*did you mean"),
        (SuiteFlags("m", "qq", []), "--task qq: unknown task"),
        (SuiteFlags("m", "qa", ["int8-dynamic:per_chanel=false"]), "per_chanel: unknown key"),
    ],
)
def test_a_bad_flag_is_one_line_naming_it(flags: SuiteFlags, message: str) -> None:
    with pytest.raises(BenchError, match=message):
        suite_from_flags(flags)


def test_names_are_safe_folder_names() -> None:
    assert suite_name("/data/models/MiniLM L6 (squad)/", "qa") == "MiniLM-L6-squad-qa"
    assert len(suite_name("x" * 200, "summarization")) <= 64


def test_bad_flags_exit_2_with_one_line(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\n")
    for args in (
        ["run", "--task", "qa"],
        ["run", str(suite), "--model", "m", "--task", "qa"],
        ["run", "--model", "m", "--task", "qa", "--compressor", "nope"],
        ["run", "--model", "m", "--task", "qa", "--save-suite", str(tmp_path / "out.txt")],
    ):
        done = bench(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("bench: error: "), done.stderr


@pytest.mark.real_data
def test_a_first_benchmark_without_a_suite_runs_end_to_end_and_becomes_a_suite(
    shared_data: Path, tmp_path: Path
) -> None:
    """The fast set's end-to-end run: real MiniLM-SQuAD on 8 real questions, fp32 and int8, in worker processes."""
    saved, results = tmp_path / "first.yaml", tmp_path / "results"
    common = ["--results-dir", str(results), "--data-dir", str(shared_data), "--quick"]
    flags = ["--model", "models/minilm-l6-squad", "--task", "qa", "--compressor", "int8-dynamic", "--limit", "8"]
    done = bench("run", *flags, *common, "--save-suite", str(saved))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in results.rglob("*.json")]
    assert sorted(r["spec"]["compressor"]["name"] for r in records) == ["baseline", "int8-dynamic"]
    for record in records:
        assert record["status"] == "ok" and record["accuracy"]["n_examples"] == 8
    int8 = next(r for r in records if r["spec"]["compressor"]["name"] == "int8-dynamic")
    assert int8["verification"]["passed"] and int8["agreement"]["n_examples"] == 8
    suite = load_suite(saved)
    assert [c.display_name for c in suite.compressors] == ["baseline", "int8-dynamic"]
    assert suite.task.limit == 8
    again = bench("run", str(saved), *common)  # the saved suite is the same runs: both are found stored
    assert again.returncode == 0 and again.stdout.count("stored") == 2, again.stdout[-2000:]
