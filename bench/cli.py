"""Command line: argument parsing and exit codes only. Heavy modules are imported per command,
so `bench --help` answers without importing torch."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

from bench import __version__
from bench.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    BenchError,
    SuiteWarning,
)
from bench.interrupts import Interrupted, say

if TYPE_CHECKING:
    from _typeshed import DataclassInstance
    from rich.console import Console

    from bench.core.compressor import Compressor
    from bench.core.launcher import Launcher, ResolvedSuite
    from bench.core.registry import Registry
    from bench.core.task import Task


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Benchmark model compression: accuracy, latency, memory and size, side by side.",
        epilog="Exit codes: 0 ok; 1 a run failed or a gate's threshold was crossed; 2 bad input; 3 internal error; "
        "130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP.",
    )
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a suite: compress, measure and store one record per run")
    run.add_argument("suite", type=Path, nargs="?", help="suite YAML file (or build one with --model and --task)")
    run.add_argument("--model", help="without a suite file: a model folder, data-directory model or hub id")
    run.add_argument("--task", help="without a suite file: the task (qa, translation, summarization, a plugin's)")
    run.add_argument(
        "--compressor", action="append", default=[], metavar="NAME", help="without a suite file: a row; repeatable"
    )
    run.add_argument("--save-suite", type=Path, metavar="FILE", help="write the suite built from the flags to FILE")
    run.add_argument("--results-dir", type=Path, default=Path("results"), help="where records go (default: results)")
    run.add_argument("--limit", type=int, help="cap the evaluation examples (overrides task.limit)")
    run.add_argument("--quick", action="store_true", help="short latency measurement, for smoke runs")
    run.add_argument("--force", action="store_true", help="re-run runs that are already stored")
    run.add_argument(
        "--only", action="append", metavar="COMPRESSOR", help="run only this compressor row (label or name); repeatable"
    )
    run.add_argument("--data-dir", help="data directory (overrides $BENCH_DATA_DIR and the suite's data_dir)")
    run.add_argument(
        "--launcher", default="local", help="where the runs execute: local (default), ray, or a plugin's name"
    )
    run.add_argument(
        "--address",
        help="the cluster (ray: auto, host:port or ray://host:10001; default $RAY_ADDRESS, else a private Ray here)",
    )
    run.add_argument("--max-parallel", type=int, help="at most this many runs in flight (default: one per slot)")
    run.add_argument(
        "--gpu-runs-per-node", type=int, default=1, help="CUDA runs that may share a node, one GPU each (default 1)"
    )

    validate = sub.add_parser("validate", help="check suites without loading any model")
    validate.add_argument("suite", type=Path, nargs="+")
    validate.add_argument("--data-dir", help="data directory (overrides $BENCH_DATA_DIR and the suite's data_dir)")

    sub.add_parser("list", help="show the installed compressors and tasks")

    doctor = sub.add_parser("doctor", help="what this machine can run, and why not; --gpu checks the CUDA path")
    doctor.add_argument(
        "--gpu", action="store_true", help="also run the GPU self-check (about 30 s; exit 1 on any failed check)"
    )
    doctor.add_argument("--device", default="cuda", help="the GPU the self-check uses (cuda or cuda:N)")

    report = sub.add_parser("report", help="render a comparison of stored records")
    report.add_argument("results", type=Path, nargs="+", help="results folders or record files")
    report.add_argument(
        "-o",
        "--output",
        type=Path,
        help="the report folder (index.html, README.md, results.csv); default: Markdown to stdout",
    )
    report.add_argument("--format", default="html,md,csv", help="comma-separated: html, md, csv, parquet")
    report.add_argument("--baseline", help="the compressor row deltas refer to (default: the `baseline` run)")
    report.add_argument(
        "--force", action="store_true", help="write into a folder that holds other files than a bench report"
    )
    tune = sub.add_parser(
        "tune", help="search the configuration best on an objective within an accuracy budget, and confirm it"
    )
    tune.add_argument("suite", type=Path, help="suite YAML file: its rows and their plugins' search spaces")
    tune.add_argument(
        "--budget",
        required=True,
        help="accuracy that must hold: METRIC:-N (points below the baseline), METRIC:N (a floor) or METRIC:N%% "
        "(a share of the baseline), e.g. accuracy.f1:-1.0, agreement.exact_agreement:90, accuracy.f1:99%%",
    )
    tune.add_argument(
        "--objective", default="latency.p50", help="latency.p50 (default), throughput, size or memory.peak"
    )
    tune.add_argument("--strategy", choices=("sensitivity", "optuna"), default="sensitivity")
    tune.add_argument("--sampler", choices=("tpe", "nsga2"), default="tpe", help="Optuna's sampler (seeded)")
    tune.add_argument("--trials", type=int, help="stop after this many candidates (optuna default: 30)")
    tune.add_argument("--time-budget", help="stop starting candidates after this long, e.g. 90m, 2h, 3600s")
    tune.add_argument("--compressors", help="comma-separated rows or compressor names to search (default: all)")
    tune.add_argument(
        "--granularity", choices=("block", "layer"), default="block", help="sensitivity: rank blocks or layers"
    )
    tune.add_argument("--limit", type=int, help="evaluation examples of the confirmation (default: the suite's)")
    tune.add_argument(
        "--rungs",
        default="50,150",
        help="tuning examples after which a candidate whose accuracy interval lies wholly outside the budget "
        "stops scoring (default 50,150; 'off': every candidate scores the whole tuning slice)",
    )
    tune.add_argument(
        "--retime-rounds",
        type=int,
        default=2,
        help="interleaved repeated timings of candidates tied in quick latency before the choice (default 2; 0: none)",
    )
    tune.add_argument("--results-dir", type=Path, default=Path("results"), help="where records go")
    tune.add_argument("-o", "--output", type=Path, help="where tune.md, tune.json and tuned.yaml go")
    tune.add_argument("--force", action="store_true", help="measure stored candidates again")
    tune.add_argument("--data-dir", help="data directory (overrides $BENCH_DATA_DIR and the suite's data_dir)")

    comp = sub.add_parser("compare", help="changes between two result sets; --fail-on makes it a CI gate")
    comp.add_argument("old", type=Path, help="results folder (or record) before")
    comp.add_argument("new", type=Path, help="results folder (or record) after")
    comp.add_argument(
        "--fail-on",
        action="append",
        metavar="METRIC:LIMIT",
        help="exit 1 when crossed outside the noise, e.g. latency.p50:+5%% (5%% slower) or accuracy.f1:-0.5 "
        "(0.5 points lower)",
    )
    comp.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="gate runs measured under other conditions (quick vs full, settings, threads, hardware) anyway",
    )
    comp.add_argument("--json", action="store_true", help="print the comparison as JSON")
    return parser


def _load(path: Path, data_dir: str | None) -> ResolvedSuite:
    from bench.config import load_suite
    from bench.validate import resolve

    return resolve(load_suite(path), path, data_dir)


def _load_all(path: Path, data_dir: str | None) -> list[ResolvedSuite]:
    """Every suite of a suite file (one, or several under `suites:`), all validated before any runs."""
    from bench.config import load_suites
    from bench.validate import resolve

    suites = load_suites(path)
    if len(suites) == 1:
        return [resolve(suites[0], path, data_dir)]
    resolved = []
    for suite in suites:
        try:
            resolved.append(resolve(suite, path, data_dir))
        except BenchError as exc:
            raise type(exc)(f"suite '{suite.name}': {exc}") from None
    return resolved


def _run_suites(args: argparse.Namespace) -> list[ResolvedSuite]:
    """The suites `bench run` runs: those of its suite file, or one built from --model and --task."""
    from bench.flag_suite import FLAGS_FILE, SuiteFlags, flag_command, save_suite, suite_from_flags
    from bench.validate import resolve

    built = args.model is not None or args.task is not None
    if args.suite is not None:
        if built or args.compressor or args.save_suite:
            raise BenchError("give a suite file, or --model and --task (with --compressor and --save-suite): not both")
        return _load_all(args.suite, args.data_dir)
    if args.model is None or args.task is None:
        raise BenchError("give a suite file, or both --model and --task")
    flags = SuiteFlags(args.model, args.task, args.compressor, args.limit, args.data_dir)
    suite, mapping = suite_from_flags(flags)
    resolved = resolve(suite, Path.cwd() / FLAGS_FILE, args.data_dir)
    if args.save_suite is not None:
        save_suite(mapping, args.save_suite, flag_command(flags))
        print(f"bench: wrote the suite to {args.save_suite}", file=sys.stderr)
    return [resolved]


def _console() -> Console:
    """A rich console; wide when the output is not a terminal, so logs and pipes keep whole tables."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


def cmd_validate(args: argparse.Namespace) -> int:
    """`bench validate SUITE...`: each suite's problem as one line; exit 2 when any has one."""
    from bench.core.launcher import RunOptions
    from bench.launchers.sequence import plan

    failed = 0
    for path in args.suite:
        try:
            members = _load_all(path, args.data_dir)
            planned = [(resolved, plan(resolved, RunOptions(results_dir=Path("results")))) for resolved in members]
        except BenchError as exc:
            print(f"bench: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        for resolved, specs in planned:
            _describe(path, resolved, len(specs))
    return EXIT_BAD_INPUT if failed else EXIT_OK


def _describe(path: Path, resolved: ResolvedSuite, runs: int) -> None:
    """What `bench validate` found for one suite."""
    from bench.core.environment import default_threads

    suite = resolved.suite
    print(f"{path}: ok — suite '{suite.name}', {runs} runs")
    print(f"  model:    {resolved.model.describe()}")
    print(f"  data:     {resolved.dataset.describe()} (split {suite.task.split}, limit {suite.task.limit or 'all'})")
    calib = resolved.calibration.describe() if resolved.calibration else "none"
    print(f"  training: {calib} (split {suite.task.calibration_split})")
    print(f"  threads:  {suite.measurement.threads or default_threads()}")


def cmd_list(_: argparse.Namespace) -> int:
    """`bench list`: every plugin (compressors, tasks, launchers), where it comes from, and the names that
    clash."""
    from rich.table import Table

    from bench.core.registry import COMPRESSORS, LAUNCHERS, TASKS, PluginError, clash_message
    from bench.report.text import for_console

    console = _console()
    registries: tuple[tuple[Registry[Compressor], str], tuple[Registry[Task], str], tuple[Registry[Launcher], str]] = (
        (COMPRESSORS, "compressors"),
        (TASKS, "tasks"),
        (LAUNCHERS, "launchers"),
    )
    for registry, title in registries:
        table = Table(title=title, title_justify="left")
        for col in ("name", "devices", "description", "from"):
            table.add_column(col)
        clashes = registry.clashes()
        for name in registry.names():
            if name in clashes:
                origins = ", ".join(e.origin for e in clashes[name])
                table.add_row(
                    for_console(name),
                    "–",
                    f"[red]{for_console(clash_message(registry.kind, name, clashes[name]))}[/red]",
                    for_console(origins),
                )
                continue
            entry = registry.entry(name)
            try:
                cls = registry.load(name)
                devices = ", ".join(sorted(getattr(cls, "devices", []))) or "–"
                desc = for_console(cls.description)
            except PluginError as exc:
                devices, desc = "–", f"[red]{for_console(str(exc))}[/red]"
            table.add_row(for_console(name), devices, desc, for_console(entry.origin))
        console.print(table)
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    """`bench doctor`: what this machine can run and why not; with --gpu, the CUDA self-check."""
    from rich.table import Table

    from bench.core import devices
    from bench.doctor import findings
    from bench.report.text import for_console

    console = _console()
    colours = {
        "ok": "green",
        "no": "red",
        "warn": "yellow",
        "info": "cyan",
        "pass": "green",
        "fail": "red",
        "skip": "yellow",
    }
    table = Table(title="bench doctor", title_justify="left", show_header=False)
    for finding in findings():
        colour = colours[finding.verdict]
        table.add_row(f"[{colour}]{finding.verdict}[/{colour}]", finding.topic, for_console(finding.detail))
    console.print(table)
    if not args.gpu:
        return EXIT_OK
    try:
        device = devices.parse(args.device)
    except ValueError as exc:
        raise BenchError(f"--device: {exc}") from None
    from bench.selfcheck import run_self_check

    console.print(f"GPU self-check on {device} ...")
    checks = run_self_check(str(device))
    result = Table(title="GPU self-check", title_justify="left", show_header=False)
    for check in checks:
        colour = colours[check.outcome]
        result.add_row(f"[{colour}]{check.outcome}[/{colour}]", check.name, for_console(check.detail))
    console.print(result)
    failed = [c for c in checks if c.outcome == "fail"]
    console.print(f"{len(failed)} of {len(checks)} checks failed" if failed else f"all {len(checks)} checks passed")
    return EXIT_FAILED if failed else EXIT_OK


OptionsT = TypeVar("OptionsT", bound="DataclassInstance")


def options_from(cls: type[OptionsT], args: argparse.Namespace, **parsed: object) -> OptionsT:
    """A command's options dataclass from its parsed arguments, field by field of the dataclass (`parsed`:
    the fields whose flags were parsed into another form)."""
    values = {f.name: parsed[f.name] if f.name in parsed else getattr(args, f.name) for f in fields(cls)}
    return cls(**values)


def cmd_run(args: argparse.Namespace) -> int:
    """`bench run SUITE`."""

    from bench.core.launcher import RunOptions
    from bench.interrupts import interruptible
    from bench.report.console import print_summary

    if args.limit is not None and args.limit < 1:
        raise BenchError(f"--limit must be a positive number of examples, got {args.limit}")
    members = _run_suites(args)
    console = _console()
    labels = {c.display_name for resolved in members for c in resolved.suite.compressors}
    unknown = sorted(set(args.only or []) - labels)
    if unknown:
        raise BenchError(f"--only {unknown[0]}: no such compressor row in the suite; rows: {', '.join(sorted(labels))}")
    from bench.core.registry import LAUNCHERS

    launcher_class = LAUNCHERS.load(args.launcher)  # an unknown launcher is bad input, before anything starts
    for flag, value in (("--max-parallel", args.max_parallel), ("--gpu-runs-per-node", args.gpu_runs_per_node)):
        if value is not None and value < 1:
            raise BenchError(f"{flag} must be a positive number, got {value}")
    if args.launcher == "local" and (args.address or args.max_parallel or args.gpu_runs_per_node != 1):
        raise BenchError("--address, --max-parallel and --gpu-runs-per-node need a cluster launcher (--launcher ray)")
    options = options_from(RunOptions, args)
    from bench.report.text import for_console

    outcomes = []
    with interruptible():
        for resolved in members:
            model, data = for_console(resolved.model.describe()), for_console(resolved.dataset.describe())
            console.print(f"[bold]{resolved.suite.name}[/bold]: model {model}, data {data}", highlight=False)
            outcomes += launcher_class(options).run(resolved, console)
    print_summary([o.record for o in outcomes], console)
    return EXIT_FAILED if any(o.record.status.failed for o in outcomes) else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """`bench report RESULTS...`."""
    from datetime import datetime, timezone

    from bench.core.records import load_records
    from bench.report import markdown
    from bench.report.document import Document
    from bench.report.provenance import provenance
    from bench.report.publish import parse_formats, publish
    from bench.report.table import build_tables

    formats = parse_formats(args.format)
    for path in args.results:
        if not path.exists():
            raise BenchError(f"no such results folder or file: {path}")
    loaded = load_records(args.results)
    if not loaded.records:
        for problem in loaded.unreadable:
            print(f"bench: skipped {problem}", file=sys.stderr)
        raise BenchError(f"no readable records under {', '.join(map(str, args.results))}")
    if args.output is None:
        tables = build_tables(loaded.records, loaded.predictions, args.baseline)
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        text = markdown.render(Document(tables, provenance(loaded.records, loaded.unreadable), when))
        written = []
    else:
        written = publish(loaded, args.output, formats, args.baseline, force=args.force)
    for problem in loaded.unreadable:  # predictions are read while the tables are built
        print(f"bench: skipped {problem}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(text)
    else:
        names = ", ".join(p.name for p in written if p.suffix != ".svg")
        print(f"wrote {len(written)} files to {args.output}/: {names}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    """`bench compare OLD NEW [--fail-on METRIC:LIMIT ...] [--allow-mismatch] [--json]`."""
    from rich.table import Table

    from bench.compare import compare, parse_threshold
    from bench.core.records import LoadedRecords, load_records
    from bench.report.text import for_console

    thresholds = [parse_threshold(t) for t in args.fail_on or []]
    sets: list[LoadedRecords] = []
    for path in (args.old, args.new):
        if not path.exists():
            raise BenchError(f"no such results folder or file: {path}")
        loaded = load_records([path])
        for problem in loaded.unreadable:
            print(f"bench: skipped {problem}", file=sys.stderr)
        if not loaded.records:
            raise BenchError(f"no readable records under {path}")
        sets.append(loaded)
    result = compare(sets[0].records, sets[1].records, thresholds, sets[0].predictions, sets[1].predictions)
    unreadable = sets[0].unreadable + sets[1].unreadable
    refused = bool(thresholds and result.mismatches and not args.allow_mismatch)
    verdict = "refused" if refused else "fail" if thresholds and result.failed else "pass"
    if args.json:
        print(result.as_json(unreadable, verdict))
    else:
        console = _console()
        grid = Table(title=for_console(f"{args.old} → {args.new}"), title_justify="left")
        for name in ("run", "metric", "old", "new", "change", "95% interval", ""):
            grid.add_column(name, justify="left" if name in ("run", "metric", "") else "right")
        for c in result.changes:
            pct = c.percent
            grid.add_row(
                for_console(c.run),
                c.metric,
                "–" if c.old is None else f"{c.old:,.4g}",
                "–" if c.new is None else f"{c.new:,.4g}",
                "–" if pct is None else f"{pct:+.1f}%",
                "–" if c.interval is None else f"{c.interval.low:+.2f} … {c.interval.high:+.2f}",
                f"[red]FAIL {for_console(str(c.crossed))}[/red]"
                if c.crossed
                else f"[yellow]within noise ({for_console(str(c.within_noise))})[/yellow]"
                if c.within_noise
                else "",
            )
        console.print(grid)
        for line in result.warnings:
            console.print(
                f"[yellow]warning: {for_console(line)}: compare figures from different machines with care[/yellow]"
            )
        for line in result.mismatches:
            console.print(f"[yellow]{for_console(line)}[/yellow]")
        for label, runs in (("only in OLD", result.only_old), ("only in NEW", result.only_new)):
            for run in runs:
                console.print(f"{label}: {for_console(run)}")
        for line in result.noisy:
            console.print(f"[yellow]{for_console(line)}[/yellow]")
        for line in result.failed:
            console.print(f"[red]regression: {for_console(line)}[/red]")
    if refused:
        raise BenchError(
            f"{len(result.mismatches)} matched run(s) are not comparable (measured under other conditions, "
            f"first: {result.mismatches[0][:300]}); --allow-mismatch gates them anyway"
        )
    return EXIT_FAILED if verdict == "fail" else EXIT_OK


def parse_duration(text: str) -> float:
    """Seconds in `90m`, `2h`, `3600s` or `3600`, or a BenchError."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise BenchError(f"--time-budget {text!r}: expected a duration such as 90m, 2h or 3600s") from None
    if seconds <= 0:
        raise BenchError(f"--time-budget {text!r}: a duration is positive")
    return seconds


def parse_rungs(text: str) -> tuple[int, ...]:
    """`--rungs 50,150` as ascending sizes, `off` as none; BenchError naming what is wrong."""
    if text.strip().lower() == "off":
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise BenchError(f"--rungs {text[:40]!r}: expected ascending example counts such as 50,150, or off") from None
    if not sizes or any(n < 1 for n in sizes) or list(sizes) != sorted(set(sizes)):
        raise BenchError(f"--rungs {text[:40]!r}: expected ascending positive example counts such as 50,150, or off")
    return sizes


def cmd_tune(args: argparse.Namespace) -> int:
    """`bench tune SUITE --budget METRIC:LIMIT [...]`."""
    from bench.interrupts import interruptible
    from bench.report.text import for_console
    from bench.tune import TuneOptions, tune
    from bench.tune.goals import parse_budget, parse_objective
    from bench.tune.show import show

    budget, objective = parse_budget(args.budget), parse_objective(args.objective)
    if args.trials is not None and args.trials < 1:
        raise BenchError(f"--trials must be a positive number, got {args.trials}")
    if args.limit is not None and args.limit < 1:
        raise BenchError(f"--limit must be a positive number of examples, got {args.limit}")
    if args.retime_rounds < 0:
        raise BenchError(f"--retime-rounds must be 0 or more, got {args.retime_rounds}")
    seconds = parse_duration(args.time_budget) if args.time_budget else None
    rungs = parse_rungs(args.rungs)
    resolved = _load(args.suite, args.data_dir)
    compressors = [c.strip() for c in (args.compressors or "").split(",") if c.strip()]
    options = options_from(
        TuneOptions, args, budget=budget, objective=objective, seconds=seconds, compressors=compressors, rungs=rungs
    )
    console = _console()
    model, data = for_console(resolved.model.describe()), for_console(resolved.dataset.describe())
    console.print(f"[bold]tune {resolved.suite.name}[/bold]: model {model}, data {data}", highlight=False)
    with interruptible():
        result = tune(resolved, args.suite, options, console)
    show(result, console)
    verdict = result.summary.verdict
    return EXIT_OK if verdict is not None and verdict.holds_at_point else EXIT_FAILED


COMMANDS = {
    "run": cmd_run,
    "tune": cmd_tune,
    "validate": cmd_validate,
    "list": cmd_list,
    "doctor": cmd_doctor,
    "report": cmd_report,
    "compare": cmd_compare,
}


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Suite warnings as one line each; other warnings as Python prints them."""
    if issubclass(category, SuiteWarning):
        print(f"bench: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `bench` console script."""
    warnings.showwarning = _show_warning
    warnings.simplefilter("always", SuiteWarning)
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Interrupted as exc:
        say(f"bench: stopped by {exc.name}; the records stored are kept, and the same command resumes the rest")
        return exc.exit_code
    except KeyboardInterrupt:
        say("bench: interrupted; records already stored are kept")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get("BENCH_DEBUG"):
            raise
        print(
            f"bench: internal error: {type(exc).__name__}: {str(exc)[:300]} (set BENCH_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
