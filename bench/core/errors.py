"""User-facing errors: each one is printed as a single line, never as a traceback."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
"""A run failed, or a `compare` gate's threshold was crossed (or a run that passed now fails)."""
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


class BenchError(Exception):
    """An error caused by the user's input (suite, paths, plugin names); exit code 2."""


class ConfigError(BenchError):
    """A suite that does not validate. The message names the field."""


class DataNotFoundError(BenchError):
    """A model or dataset that could not be found locally, and not fetched. Says where bench looked."""


class SuiteWarning(UserWarning):
    """Something in a suite that works but should change (a deprecated key); printed as one line."""


class PluginContractError(RuntimeError):
    """A plugin returned something the contract in bench.core does not allow (the message names the plugin)."""


class CompressionNotApplied(RuntimeError):
    """A compressor's verification found that the model was not compressed as claimed."""


class UnsupportedHere(RuntimeError):
    """The run cannot be done on this machine/device (stored as a `skipped` record with this reason)."""
