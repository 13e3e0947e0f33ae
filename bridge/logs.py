"""Log lines a client cannot forge: control characters in logged text are escaped.

An OSC address holding a newline, or an HTTP path holding terminal escape codes, would
otherwise write a false line into the log or repaint the terminal that shows it.
"""

from __future__ import annotations

import logging
import re

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: object) -> str:
    """`text` with every control character written as an escape: '\\n' -> '\\x0a'."""
    return CONTROL.sub(lambda match: escape(ord(match.group(0))), str(text))


def escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class Formatter(logging.Formatter):
    """A Formatter whose message part is `printable` (tracebacks keep their lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)
