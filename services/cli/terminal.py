"""What the CLI prints reaches a terminal with every stored control character made visible.

Run, dataset and label names and texts come from the pool, and any of them may hold ESC, BEL or a
bidi override written before the pool refused them (or a text, which may hold anything). Rather
than trust each of the many places that print one, the CLI's stdout and stderr pass through
``plaintext.visible`` while a command runs: an ESC prints as ``\\x1b`` and never reaches the
terminal raw. Files the commands write (``--output``, ``--csv``) keep the stored text exactly.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from lesslabels.common.plaintext import visible


class VisibleText:
    """A text stream that writes ``visible(text)`` to the stream it wraps; the rest it passes on."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(visible(text))
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def visible_output() -> Iterator[None]:
    """sys.stdout and sys.stderr through ``VisibleText`` until the block ends."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = VisibleText(out), VisibleText(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def write_data(data: bytes) -> None:
    """Exported bytes to stdout: exactly, into a pipe or a file; made visible on a terminal."""
    if sys.stdout.isatty():
        sys.stdout.write(data.decode("utf-8", errors="replace"))
        sys.stdout.flush()
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
