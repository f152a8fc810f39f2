"""The end of `bench tune` on the console: the Pareto front, the choice and its verdict, the snippet."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from bench.report.text import for_console
from bench.tune.outcome import figure

if TYPE_CHECKING:
    from bench.tune import TuneResult


def show(result: TuneResult, console: Console) -> None:
    """Print the front (every trial no other beats on both figures), the choice and where files went."""
    s = result.summary
    table = Table(title=f"Pareto front of {len(s.trials)} candidates (tuning examples)", title_justify="left")
    for name in ("candidate", "row", f"Δ {s.metric}", s.objective, "within budget"):
        table.add_column(name, justify="left" if name in ("candidate", "row", "within budget") else "right")
    for t in sorted((t for t in s.trials if t.on_front), key=lambda t: -(t.accuracy or 0.0)):
        table.add_row(
            for_console(t.label),
            for_console(t.family),
            figure(t.delta, sign=True),
            figure(t.objective, 3),
            "[green]yes[/green]" if t.feasible else "[yellow]no[/yellow]",
        )
    console.print(table)
    if s.stopped:
        console.print(f"[yellow]stopped early: {for_console(s.stopped)}[/yellow]")
    early = sum(1 for t in s.trials if t.stopped)
    if early:
        console.print(f"{early} of {len(s.trials)} candidates stopped scoring at a rung, already outside the budget")
    for r in s.retimed:
        rounds = ", ".join(figure(v, 3) for v in r.rounds)
        mark = "  [green]chosen[/green]" if r.chosen else ""
        console.print(
            f"  re-timed {for_console(r.label)}: quick {figure(r.quick, 3)}, rounds {rounds}, mean "
            f"{figure(r.mean, 3)}{mark}",
            highlight=False,
        )
    v = s.verdict
    if s.chosen is None:
        console.print(f"[red]no candidate kept the budget {for_console(s.budget)} on the tuning examples[/red]")
    elif v is None:
        console.print(f"[red]the chosen {for_console(s.chosen)} failed on the evaluation examples[/red]")
    else:
        point = "[green]holds[/green]" if v.holds_at_point else "[red]does not hold[/red]"
        colour = {True: "green", False: "yellow", None: "default"}[v.holds_over_interval]
        factor = f", {v.factor:.2f}x the baseline" if v.factor else ""
        console.print(
            f"[bold]chosen[/bold] {for_console(s.chosen)}: {v.metric} {v.delta:+.2f} on {v.evaluation_examples} "
            f"evaluation examples ({for_console(v.interval_text)}; allowed {v.allowed_delta:+.2f}); {v.objective} "
            f"{figure(v.chosen_objective, 3)} against {figure(v.baseline_objective, 3)}{factor}",
            highlight=False,
        )
        console.print(
            f"  the budget {point} at the point estimate, and [{colour}]{v.over_interval}[/{colour}] over the interval"
        )
    snippet = s.snippet()
    if snippet is not None:
        console.print("[bold]the chosen row[/bold] (for a suite's compressors:)")
        console.print(for_console(snippet.rstrip()), highlight=False)
    for path in result.files:
        console.print(f"  wrote {for_console(str(path))}", highlight=False)
