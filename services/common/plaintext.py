"""Names are plain text: which characters a stored name may not hold, and how stored text is shown
safely in a terminal or a page.

A terminal obeys control characters: ESC starts a sequence that can set the window title, clear the
screen or rewrite what was printed, BEL rings, carriage return overwrites a line. Bidirectional
controls (U+202E and friends) reorder what a reader sees without changing the text. None of these
belongs in a dataset, run or label name, so the pool refuses them there (``check_name``); texts to
label may legitimately hold tabs and newlines, and whatever is stored is shown through ``visible``.
"""

from __future__ import annotations

import re

from lesslabels.common.errors import InvalidArgument

#: Bidirectional formatting characters: ALM, LRM, RLM, the embeddings and overrides (U+202A-U+202E)
#: and the isolates (U+2066-U+2069).
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
#: Every C0 control (NUL, tab, newline, ESC, BEL...), DEL, every C1 control, the bidi controls and
#: the line and paragraph separators.
_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f{BIDI_CONTROLS}\u2028\u2029]")
#: The same but tab and newline, which stored texts may hold and a terminal shows as layout.
_SHOWN_ESCAPED = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{BIDI_CONTROLS}\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def name_problem(value: str, field: str) -> str:
    """Why ``value`` is no plain-text name ('' when it is): the control character it holds, as a
    code point, where, and ``field``."""
    found = _CONTROL.search(value)
    if found is None:
        return ""
    return (
        f"{field} holds the control character U+{ord(found.group()):04X} at position {found.start() + 1}: "
        "names are plain text (no control, bidirectional or line-break characters)"
    )


def check_name(value: str, field: str) -> str:
    """``value`` when it holds no control character; else InvalidArgument (``name_problem``)."""
    problem = name_problem(value, field)
    if problem:
        raise InvalidArgument(problem)
    return value


def visible(text: str) -> str:
    """``text`` with every control character but tab and newline written as a visible escape
    (``\\x1b``, ``\\x07``, ``\\u202e``): what a terminal or a page shows of stored text."""
    return _SHOWN_ESCAPED.sub(_escape, text)
