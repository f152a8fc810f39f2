"""The run contract: everything a compressor, a task or a launcher sees, and nothing else of bench.

Plugins import from these modules and from a runtime (bench.runtimes) only; the rest of bench depends on
this package, never the reverse (tests/test_layering.py checks both), and no explicit `Any` crosses it
(mypy's disallow_any_explicit). docs/plugins.md lists what each module holds.
"""
