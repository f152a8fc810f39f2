"""Text from records made safe to print: no terminal control sequences, no spreadsheet formulas."""

from __future__ import annotations

import re

# CSI/OSC escape sequences, then any other C0/C1 control character except tab and newline.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?|\x1b[@-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def plain(text: str) -> str:
    """`text` without ANSI escape sequences or control characters (a record could hold them)."""
    return _CONTROL.sub("", _ANSI.sub("", text))


def spreadsheet_safe(text: str) -> str:
    """A CSV cell that spreadsheets will not evaluate as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def for_console(text: str) -> str:
    """`text` for rich: no control sequences, and brackets shown as they are, never read as markup."""
    from rich.markup import escape

    return escape(plain(text))
