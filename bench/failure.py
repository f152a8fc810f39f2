"""Turn an exception inside a run into an ErrorInfo that says where it happened: the phase, the exception,
the plugin's own file and line, and the log that holds the whole output."""

from __future__ import annotations

import importlib.util
import inspect
import re
import sysconfig
import traceback
from collections.abc import Callable, Iterable
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


FAULT_HEADER = re.compile(r"^Fatal Python error: .*$", re.MULTILINE)
THREAD_HEADER = re.compile(r"^(?:Current thread|Thread) 0x[0-9a-f]+ \(most recent call first\):$", re.MULTILINE)
FRAME = re.compile(r'^  File "(?P<file>.+)", line (?P<line>\d+) in (?P<name>.+)$')


def registered_files(targets: Iterable[str]) -> frozenset[str]:
    """The source files of plugins named by their entry-point targets (`module:Class`), found without
    importing them."""
    files: set[str] = set()
    for target in targets:
        module = target.partition(":")[0]
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.origin:
            files.add(str(Path(spec.origin).resolve()))
    return frozenset(files)


def _innermost(frames: list[str], files: frozenset[str]) -> str | None:
    """`file:line` of the innermost frame in the plugins' files (or folders), else outside the standard
    library."""
    parsed = [m for m in (FRAME.match(f) for f in frames) if m]
    folders = {str(Path(f).parent) for f in files}
    stdlib = sysconfig.get_paths()["stdlib"]
    tests: list[Callable[[str], bool]] = [
        lambda path: path in files,
        lambda path: str(Path(path).parent) in folders,
        lambda path: not path.startswith((stdlib, "<")),
    ]
    for test in tests:
        for frame in parsed:  # faulthandler lists the innermost frame first
            if test(frame["file"]):
                return f"{frame['file']}:{frame['line']}"
    return None


def dumped_stack(log: str, files: frozenset[str] = frozenset()) -> tuple[str, str | None] | None:
    """The main thread's stack from the last faulthandler dump in a worker's log (a crash, or the SIGTERM
    that stopped it), with the fatal error line if any; and `file:line` of its innermost frame in a
    plugin's `files` (else outside the standard library)."""
    starts = [m.start() for m in THREAD_HEADER.finditer(log)]
    if not starts:
        return None
    fatal = [m for m in FAULT_HEADER.finditer(log) if m.start() < starts[-1]]
    # the last dump's thread blocks: from the last fatal line (or the first block after the previous dump)
    first = fatal[-1].end() if fatal else starts[0]
    blocks = []
    for start in [s for s in starts if s >= first]:
        lines = log[start:].splitlines()
        frames = [lines[0]]
        for line in lines[1:]:
            if not FRAME.match(line):
                break
            frames.append(line)
        blocks.append(frames)
    main = next((b for b in blocks if any("_run_module_as_main" in f or "in <module>" in f for f in b)), blocks[-1])
    location = _innermost(main[1:], files)
    head = fatal[-1].group(0) + "\n" if fatal else ""
    return head + "\n".join(main), location
