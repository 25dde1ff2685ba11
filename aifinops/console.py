"""The CLI's Rich console, which prints text from data exactly as it is.

Team, model, finding and file names come from provider exports, webhooks and
configuration, so a name such as ``[red]x[/red]`` or one containing an escape
sequence must print as those characters, never style the terminal or move its
cursor. ``SafeConsole`` turns Rich markup and emoji codes off, so styled output
goes through ``style=`` or ``Text`` objects. It also shows control characters
(other than newline and tab) and bidirectional overrides as ``\\xNN`` or
``\\uNNNN`` escapes, in every string it renders, table cells included.
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.text import Text

# C0 and C1 control characters other than tab and newline, DEL, and the Unicode bidirectional overrides and
# isolates, which can reorder how a line reads on the terminal.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: object) -> str:
    """Return ``str(text)`` with its control characters written as escapes, safe to print on a terminal."""
    return _UNSAFE.sub(_escaped, str(text))


def styled(text: object, style: str) -> Text:
    """Build a styled piece of text from data, with its control characters written as escapes."""
    return Text(visible(text), style=style)


class SafeConsole(Console):
    """A Rich console without markup or emoji codes that escapes control characters in every string it renders."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        kwargs.setdefault("emoji", False)
        super().__init__(**kwargs)

    def render_str(self, text: str, *args: Any, **kwargs: Any) -> Text:
        return super().render_str(visible(text), *args, **kwargs)
