"""The `local` launcher (the default): the suite's runs one after another on this machine, each in a fresh
worker process, baselines first (the plan puts each group's baseline before its compressed runs)."""

from __future__ import annotations

from rich.console import Console

from bench.core.environment import machine_name
from bench.core.launcher import Launcher, Outcome, ResolvedSuite
from bench.folder_lock import folder_lock
from bench.launchers.board import RunBoard
from bench.plan import results_folder
from bench.report.text import for_console
from bench.runner import baseline_keys, clean_work, environment_for, plan, reusable, run_one, selected


class LocalLauncher(Launcher):
    """Runs on this machine, one at a time, so that no two timed runs share its cores."""

    name = "local"
    description = "this machine, one run at a time, each in a fresh process (the default)"

    def run(self, resolved: ResolvedSuite, console: Console) -> list[Outcome]:
        options = self.options
        specs = plan(resolved, options)
        baselines = baseline_keys(specs)
        folder = results_folder(options.results_dir, machine_name(), resolved.suite.name)
        outcomes: list[Outcome] = []
        with folder_lock(folder) as killed:
            if killed is not None:
                console.print(f"  [yellow]resuming:[/yellow] the last run here ({for_console(killed)}) was killed")
            clean_work(folder, console)
            here = environment_for(s.device for s in specs)
            chosen = selected(specs, options.only)
            with RunBoard(len(chosen), console) as board:
                for spec in chosen:
                    stored = reusable(folder, spec, here, options.force)
                    if stored is not None:
                        outcomes.append(Outcome(stored, reused=True))
                        board.stored(spec)
                        continue
                    board.started(spec)
                    record = run_one(spec, folder, None if spec.is_baseline else baselines.get(spec.group))
                    outcomes.append(Outcome(record, reused=False))
                    board.finished(record)
        return outcomes
