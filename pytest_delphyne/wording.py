"""Counted nouns in what users read: "1 request", "2 requests"."""

from __future__ import annotations


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """`count` and `noun`, in the plural (`noun` + "s" unless given) unless the
    count is exactly one."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural_noun or noun + 's'}"


def verb_agreeing(count: int, singular: str, plural_form: str) -> str:
    """The verb form for `count` subjects: "is" for one, "are" for the rest."""
    return singular if count == 1 else plural_form
