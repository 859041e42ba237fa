"""Counted nouns in what users read: "1 request", "2 requests"."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """`count` and `noun`, in the plural (`noun` + "s" unless given) unless the
    count is exactly one."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural_noun or noun + 's'}"


def verb_agreeing(count: int, singular: str, plural_form: str) -> str:
    """The verb form for `count` subjects: "is" for one, "are" for the rest."""
    return singular if count == 1 else plural_form


def shown_path(path: Path, base: Path) -> str:
    """`path` as a user reads it: relative to `base` (where the command was run)
    when it lies under it, as pytest shows test files; absolute otherwise."""
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)
