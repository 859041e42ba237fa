"""Reading tracebacks in tests, whatever Python version wrote them."""

from __future__ import annotations


def without_markers(text: str) -> list[str]:
    """The lines of a traceback without the lines of `^` and `~` that point into the
    line above (Python writes them, or not, by version)."""
    return [line for line in text.splitlines() if line.strip(" ^~")]
