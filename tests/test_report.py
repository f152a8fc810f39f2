"""Reports: golden Markdown and CSV, determinism, HTML escaping, intervals, Pareto fronts, and the
HTML page in headless Chromium."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.core.records import load_records
from bench.report.bootstrap import accuracy_delta, median_change, paired_mean_delta
from bench.report.plots import pareto_front
from bench.report.publish import publish
from bench.report.table import build_tables
from tests.golden.regenerate import FILES, GENERATED, GOLDEN, build

from .test_cli import bench


def test_markdown_and_csv_match_the_golden_files(tmp_path: Path) -> None:
    build(tmp_path)
    for name in FILES:
        expected = (GOLDEN / "expected" / name).read_text(encoding="utf-8")
        assert (tmp_path / name).read_text(encoding="utf-8") == expected, (
            f"{name} differs from tests/golden/expected (if intended: python -m tests.golden.regenerate)"
        )


def _without_generated_line(path: Path) -> bytes:
    return b"\n".join(line for line in path.read_bytes().split(b"\n") if b"Generated at" not in line)


def test_same_records_give_the_same_bytes_apart_from_the_generated_line(tmp_path: Path) -> None:
    loaded = load_records([GOLDEN / "records"])
    a = publish(loaded, tmp_path / "a", ("html", "md", "csv"), generated="2026-01-01T00:00:00+00:00")
    b = publish(load_records([GOLDEN / "records"]), tmp_path / "b", ("html", "md", "csv"))
    assert [p.name for p in a] == [p.name for p in b]
    assert any(p.suffix == ".svg" for p in a)
    for first, second in zip(a, b, strict=True):
        assert _without_generated_line(first) == _without_generated_line(second), first.name
    assert (tmp_path / "a" / "index.html").read_bytes() != (tmp_path / "b" / "index.html").read_bytes()


def test_report_content_flags_failures_and_provenance() -> None:
    readme = (GOLDEN / "expected" / "README.md").read_text()
    assert "RANDOM WEIGHTS" in readme and "accuracy scores are not meaningful" in readme
    assert "bnb-int8: skipped: bnb-int8: bitsandbytes quantized kernels run on CUDA only" in readme
    assert "unstructured sparsity runs on dense kernels" in readme
    assert "- CPU flags: " in readme and "avx512_vnni" in readme and "- Libraries: torch 2.13.0" in readme
    assert "> **Warning:** these records come from 3 bench commits" in readme
    assert "n.s." in readme and "[" in readme  # intervals, and differences that are not significant
    assert "**" in readme and "_" in readme  # best and worst per column


def _hostile_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "records"
    shutil.copytree(GOLDEN / "records", folder)
    for path in folder.glob("*.json"):
        record = json.loads(path.read_text())
        record["spec"]["model"]["label"] = "<script>alert('model')</script>"
        record["notes"] = ['<img src=x onerror="alert(1)">']
        if record["spec"]["compressor"]["name"] == "bnb-int8":
            record["error"]["message"] = "</td><script>alert('error')</script>"
        path.write_text(json.dumps(record))
    return folder


def test_hostile_names_render_escaped(tmp_path: Path) -> None:
    publish(load_records([_hostile_copy(tmp_path)]), tmp_path / "out", ("html", "md"), generated="x")
    page = (tmp_path / "out" / "index.html").read_text()
    assert "<script>" not in page and "<img src=x" not in page and "</td><script>" not in page
    assert "&lt;script&gt;alert(&#x27;model&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "<script>" not in readme and "&lt;script&gt;" in readme


def test_baseline_option_changes_the_reference_row(tmp_path: Path) -> None:
    loaded = load_records([GOLDEN / "records"])
    tables = build_tables(loaded.records, loaded.predictions, baseline="int8-static")
    assert [t.baseline for t in tables] == ["int8-static", None]
    result = bench("report", str(GOLDEN / "records"), "-o", str(tmp_path / "r"), "--baseline", "nothing")
    assert result.returncode == 2 and "no successful run labelled 'nothing'" in result.stderr


def test_formats_and_parquet(tmp_path: Path) -> None:
    result = bench("report", str(GOLDEN / "records"), "-o", str(tmp_path / "r"), "--format", "csv,parquet")
    assert result.returncode == 0, result.stderr
    import pandas as pd

    csv = pd.read_csv(tmp_path / "r" / "results.csv")
    parquet = pd.read_parquet(tmp_path / "r" / "results.parquet")
    assert list(csv.columns) == list(parquet.columns) and len(csv) == len(parquet) == 8
    assert not (tmp_path / "r" / "index.html").exists()
    bad = bench("report", str(GOLDEN / "records"), "-o", str(tmp_path / "r"), "--format", "pdf")
    assert bad.returncode == 2 and "unknown format pdf" in bad.stderr


def test_paired_bootstrap_and_significance() -> None:
    worse = paired_mean_delta([1.0] * 50 + [0.0] * 50, [0.0] * 30 + [1.0] * 20 + [0.0] * 50, scale=100)
    assert worse.delta == pytest.approx(-30.0) and worse.high < 0 and worse.significant
    same = paired_mean_delta([1.0, 0.0] * 50, [0.0, 1.0] * 25 + [1.0, 0.0] * 25, scale=100)
    assert same.delta == 0.0 and same.low < 0 < same.high and not same.significant
    rng = np.random.default_rng(0)
    slower = median_change(list(rng.normal(10, 0.5, 300)), list(rng.normal(12, 0.5, 300)))
    assert 15 < slower.low < slower.delta < slower.high < 25


def test_corpus_bleu_interval_is_paired_over_segments() -> None:
    base = [
        {"id": str(i), "prediction": "the cat sat on the mat", "reference": "the cat sat on the mat"} for i in range(20)
    ]
    new = [{**r, "prediction": "a dog sat on a rug" if i % 2 else r["prediction"]} for i, r in enumerate(base)]
    interval = accuracy_delta("bleu", base, new)
    assert interval is not None and interval.delta < 0 and interval.significant
    assert accuracy_delta("output_words", base, new) is None


def test_pareto_front() -> None:
    points = [("base", 10.0, 80.0), ("fast", 5.0, 70.0), ("bad", 12.0, 60.0), ("good", 7.0, 79.0), ("tie", 10.0, 80.0)]
    assert [p[0] for p in pareto_front(points)] == ["fast", "good", "base"]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install chromium)")
def test_html_in_headless_chromium_is_not_blank_and_holds_the_table(tmp_path: Path) -> None:
    publish(load_records([GOLDEN / "records"]), tmp_path / "report", ("html",), generated=GENERATED)
    page = (tmp_path / "report" / "index.html").as_uri()
    browser = _chromium()
    assert browser is not None
    shot = tmp_path / "shot.png"
    profile = f"--user-data-dir={tmp_path / 'profile'}"
    subprocess.run(
        [browser, *CHROMIUM_FLAGS, profile, "--window-size=1400,1800", f"--screenshot={shot}", page],
        check=True,
        capture_output=True,
        timeout=120,
    )
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))[..., :3]
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    not_white = (pixels < 0.95).any(axis=2).mean()
    assert not_white > 0.02, f"the screenshot is almost blank ({not_white:.1%} non-white pixels)"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # text, tables and plots, not one flat colour
    dom = subprocess.run(
        [browser, *CHROMIUM_FLAGS, profile, "--dump-dom", page], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    assert "<table>" in dom and "int8-dynamic-ort" in dom and "first token ms" in dom and "RANDOM WEIGHTS" in dom
