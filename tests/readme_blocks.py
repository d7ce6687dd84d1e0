"""The README's code blocks, for tests that run an example exactly as a reader would copy it."""

from __future__ import annotations

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_block(marker: str) -> str:
    """The one ```python block of README.md that contains ``marker``."""
    blocks = re.findall(r"^```python\n(.*?)^```$", README.read_text(encoding="utf-8"), flags=re.S | re.M)
    found = [block for block in blocks if marker in block]
    assert len(found) == 1, f"README.md has {len(found)} python blocks with {marker!r}, expected one"
    return found[0]
