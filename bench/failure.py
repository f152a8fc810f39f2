"""Turn an exception inside a run into an ErrorInfo that says where it happened: the phase, the exception,
the plugin's own file and line, and the log that holds the whole output."""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Iterable
from pathlib import Path

from bench.records import ErrorInfo


def plugin_files(plugins: Iterable[object]) -> frozenset[str]:
    """The source files of the plugins' classes (None entries are skipped)."""
    files: set[str] = set()
    for plugin in plugins:
        if plugin is None:
            continue
        try:
            files.add(str(Path(inspect.getfile(type(plugin))).resolve()))
        except (TypeError, OSError):
            continue
    return frozenset(files)


def plugin_frame(exc: BaseException, files: frozenset[str]) -> str | None:
    """`file:line` of the innermost traceback frame in one of `files` (else in a file beside them)."""
    frames = traceback.extract_tb(exc.__traceback__)
    folders = {str(Path(f).parent) for f in files}
    for wanted in (files, folders):
        for frame in reversed(frames):
            path = str(Path(frame.filename).resolve())
            if path in wanted or str(Path(path).parent) in wanted:
                return f"{frame.filename}:{frame.lineno}"
    return None


def error_info(
    exc: BaseException, phase: str | None, files: frozenset[str], log_path: str | None, limit: int = 4000
) -> ErrorInfo:
    """Type, message, phase, plugin location, log and the end of the traceback."""
    tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return ErrorInfo(
        type=type(exc).__name__,
        message=str(exc).strip()[:2000],
        traceback_tail=tail[-limit:],
        phase=phase,
        location=plugin_frame(exc, files),
        log=log_path,
    )
