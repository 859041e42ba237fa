"""Counted nouns in what users read ("1 request", "2 requests"), shown paths, and a
config's params as a line shows them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_delphyne.plain_data import flatten_params

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


def describe_params(params: dict[str, Any]) -> str:
    """`params` as one line shows them: `key=value` pairs, nested keys flattened."""
    if any(type(value) is dict for value in params.values()):
        return " ".join(
            f"{key}={value}" for key, value in flatten_params(params).items()
        )
    # Flat params (the common case) need no generator per config: 100,000 of these
    # make the plan that `--co` prints.
    return " ".join(f"{key}={value}" for key, value in params.items())
