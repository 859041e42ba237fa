"""What a report asks for, checked before any work: matplotlib to draw it, and the
hyperparameters to group it by.

The plugin runs these checks when pytest starts, so a misspelled `--group-by` or a
missing extra stops the session before a single config is paid for.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_delphyne.errors import DelphyneError

MISSING_PLOTTING_MESSAGE = (
    "the experiment report draws its plots with matplotlib, which is not installed: "
    "pip install 'pytest-delphyne[report]'"
)
UNKNOWN_GROUP_MESSAGE = (
    "cannot group the report by {names}: not a hyperparameter of the experiment "
    "(its hyperparameters: {known})"
)


class ReportDependencyError(DelphyneError):
    """matplotlib, which draws the report's plots, is not installed."""

    def __init__(self) -> None:
        super().__init__(MISSING_PLOTTING_MESSAGE)


class UnknownGroupError(DelphyneError):
    """`group_by` names something that is not a hyperparameter."""

    def __init__(self, names: Sequence[str], known: Sequence[str]):
        super().__init__(
            UNKNOWN_GROUP_MESSAGE.format(
                names=", ".join(repr(name) for name in names),
                known=", ".join(known) or "none",
            )
        )


def require_plotting() -> None:
    """Check, before any work, that the report can be drawn.

    Raises:
        ReportDependencyError: matplotlib is missing.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportDependencyError from None


def parse_group_by(text: str | Sequence[str] | None) -> list[str]:
    """`"model,temperature"` (or a list of names) as a list of names."""
    if text is None:
        return []
    parts = text.split(",") if isinstance(text, str) else list(text)
    return [part.strip() for part in parts if part.strip()]


def check_group_by(names: Sequence[str], params: Sequence[str]) -> None:
    """Check that `names` are all hyperparameters (`params`).

    Raises:
        UnknownGroupError: naming those that are not.
    """
    unknown = [name for name in names if name not in params]
    if unknown:
        raise UnknownGroupError(unknown, params)
