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

from bench.core.records import ErrorInfo


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


def innermost_frame(
    frames: Iterable[tuple[str, int | None]], files: frozenset[str], beyond_stdlib: bool = False
) -> str | None:
    """`file:line` of the first of `frames` (innermost first) in one of `files`, else in a file beside them,
    else (with `beyond_stdlib`) in a file outside the standard library."""
    listed = list(frames)
    folders = {str(Path(f).parent) for f in files}
    stdlib = sysconfig.get_paths()["stdlib"]
    tests: list[Callable[[str], bool]] = [
        lambda path: str(Path(path).resolve()) in files,
        lambda path: str(Path(path).resolve().parent) in folders,
    ]
    if beyond_stdlib:
        tests.append(lambda path: not path.startswith((stdlib, "<")))
    for test in tests:
        for path, line in listed:
            if test(path):
                return f"{path}:{line}"
    return None


def plugin_frame(exc: BaseException, files: frozenset[str]) -> str | None:
    """`file:line` of the innermost traceback frame in one of `files` (else in a file beside them)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return innermost_frame(((f.filename, f.lineno) for f in reversed(frames)), files)


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
    parsed = [m for m in (FRAME.match(f) for f in main[1:]) if m]  # faulthandler lists the innermost first
    location = innermost_frame(((m["file"], int(m["line"])) for m in parsed), files, beyond_stdlib=True)
    head = fatal[-1].group(0) + "\n" if fatal else ""
    return head + "\n".join(main), location
