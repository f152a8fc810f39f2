"""Do a suite's speed-ups hold on a re-run? For two results folders of the same suite (two `bench run ... --force`
measurements), print each row's p50 change against its group's baseline in both, with the first run's 95%
interval, and whether the second run's change lies inside it.

    bench run suites/qa.yaml --force && cp -r results/<machine>/qa /tmp/first
    bench run suites/qa.yaml --force
    python examples/rerun_stability.py /tmp/first results/<machine>/qa
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.catalogue import BY_NAME
from bench.core.records import RunRecord, Status, load_records
from bench.report.bootstrap import Interval

P50 = BY_NAME["latency.p50"]


def changes(folder: Path) -> dict[str, tuple[RunRecord, Interval]]:
    """Each ok row's p50 change against its group's baseline, by row name and shape."""
    records = [r for r in load_records([folder]).records if r.status == Status.OK and not r.spec.retiming]
    baselines = {r.spec.group: r for r in records if r.spec.is_baseline}
    found = {}
    for record in records:
        base = baselines.get(record.spec.group)
        interval = P50.change(base, record) if base is not None and not record.spec.is_baseline else None
        if interval is not None:
            found[f"{record.spec.compressor.display_name} bs{record.spec.batch_size}"] = (record, interval)
    return found


def main(first: Path, second: Path) -> int:
    """The table, and the share of rows whose second change lies in the first's interval."""
    one, two = changes(first), changes(second)
    print("| row | measured | run 1: p50 change [95% interval] | run 2: p50 change [95% interval] | inside |")
    print("| --- | --- | ---: | ---: | --- |")
    inside = 0
    shared = [name for name in one if name in two]
    for name in shared:
        (record, a), (_, b) = one[name], two[name]
        where = "interleaved" if record.interleaving is not None else "own window"
        held = a.low <= b.delta <= a.high
        inside += held
        print(
            f"| {name} | {where} | {a.delta:+.1f}% [{a.low:+.1f}, {a.high:+.1f}] | "
            f"{b.delta:+.1f}% [{b.low:+.1f}, {b.high:+.1f}] | {'yes' if held else 'NO'} |"
        )
    share = 100 * inside / max(1, len(shared))
    print(f"\n{inside} of {len(shared)} rows ({share:.0f}%): run 2 inside run 1's interval")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        raise SystemExit(2)
    raise SystemExit(main(Path(sys.argv[1]), Path(sys.argv[2])))
