"""Agents, seeds and the price cutoff, and the table a paper prints.

The computation is that of Delphyne's `find_invariants` analysis script: a config
that spent more than the cutoff counts as unsolved, at the cutoff price; then, per
agent and seed, the problems solved and the mean and median price per problem; then,
per agent, the mean and standard deviation of each over the seeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pytest_delphyne.comparison.sources import ExperimentRows
from pytest_delphyne.errors import DelphyneError

if TYPE_CHECKING:
    import pandas

PriceUnit = Literal["dollars", "cents"]

AGENT_COLUMN = "agent"
EXPERIMENT_COLUMN = "experiment"
SEED_COLUMN = "seed"
MEASURES = ("problems_solved", "avg_price", "median_price")
PRICE_MEASURES = ("avg_price", "median_price")
TABLE_COLUMNS = (
    AGENT_COLUMN,
    EXPERIMENT_COLUMN,
    "seeds",
    "problems",
    *(f"{measure}_{stat}" for measure in MEASURES for stat in ("mean", "std")),
)
PRICE_DECIMALS: Mapping[PriceUnit, int] = {"dollars": 4, "cents": 2}

UNKNOWN_AGENT_FIELD_MESSAGE = (
    "--agent-by: {experiment} has no hyperparameter {fields} (its hyperparameters: "
    "{known})"
)
UNKNOWN_EXPERIMENT_MESSAGE = (
    "--agent-by: no experiment is named {label!r} (the experiments: {known})"
)
UNKNOWN_SEED_FIELD_MESSAGE = (
    "--seed-field: {experiment} has no hyperparameter {field!r} (its "
    "hyperparameters: {known})"
)
SEED_IN_AGENT_MESSAGE = (
    "--agent-by: {field!r} is the seed field, averaged over; it cannot also tell "
    "agents apart"
)
BAD_CUTOFF_MESSAGE = "--price-cutoff: {value!r} is not a positive price"


class ComparisonError(DelphyneError):
    """Agents, seeds or a cutoff that do not fit the experiments compared."""


@dataclass(frozen=True)
class AgentSpec:
    """Which hyperparameters tell agents apart.

    Attributes:
        fields: For every experiment without its own entry in `by_experiment`.
        by_experiment: An experiment's own fields, by its label.
    """

    fields: tuple[str, ...] = ()
    by_experiment: Mapping[str, tuple[str, ...]] | None = None

    def fields_of(self, label: str) -> tuple[str, ...]:
        own = (self.by_experiment or {}).get(label)
        return self.fields if own is None else own


def parse_agent_by(texts: Sequence[str]) -> AgentSpec:
    """`["model,temperature", "baseline:model"]`: fields for every experiment, or
    for one experiment before a colon."""
    fields: list[str] = []
    by_experiment: dict[str, tuple[str, ...]] = {}
    for text in texts:
        label, separator, names = text.rpartition(":")
        parsed = tuple(name.strip() for name in names.split(",") if name.strip())
        if separator:
            by_experiment[label.strip()] = by_experiment.get(label.strip(), ()) + parsed
        else:
            fields.extend(parsed)
    return AgentSpec(tuple(fields), by_experiment)


def check_price_cutoff(value: float | None) -> None:
    """Raises ComparisonError: the cutoff is no positive number."""
    if value is not None and not value > 0:
        raise ComparisonError(BAD_CUTOFF_MESSAGE.format(value=value))


def agent_rows(
    experiments: Sequence[ExperimentRows],
    agents: AgentSpec,
    seed_field: str | None,
) -> tuple[pandas.DataFrame, list[str]]:
    """Every experiment's rows in one frame with `experiment`, `agent` and `seed`
    columns, and the agents in order: by experiment, then by the values of their
    fields.

    An agent is named `<experiment>-<value>-<value>...`, each value as pandas writes
    it (`astype(str)`), as the analysis scripts of Delphyne name them.

    Raises:
        ComparisonError: a field or an experiment named is unknown.
    """
    import pandas

    labels = [experiment.source.label for experiment in experiments]
    unknown = sorted(set(agents.by_experiment or {}) - set(labels))
    if unknown:
        raise ComparisonError(
            UNKNOWN_EXPERIMENT_MESSAGE.format(label=unknown[0], known=", ".join(labels))
        )
    frames = []
    order: list[str] = []
    for experiment in experiments:
        label = experiment.source.label
        fields = list(agents.fields_of(label))
        check_fields(experiment, fields, seed_field)
        frame = experiment.frame.copy()
        frame[EXPERIMENT_COLUMN] = label
        names = pandas.Series(label, index=frame.index)
        for field in fields:
            names = names + "-" + frame[field].astype(str)
        frame[AGENT_COLUMN] = names
        frame[SEED_COLUMN] = frame[seed_field] if seed_field else 0
        frame["success"] = frame["success"].astype(bool)
        if fields:
            keys = frame.drop_duplicates(fields).sort_values(fields)
            order.extend(keys[AGENT_COLUMN].drop_duplicates())
        else:
            order.append(label)
        frames.append(frame)
    return pandas.concat(frames, ignore_index=True), order


def check_fields(
    experiment: ExperimentRows, fields: Sequence[str], seed_field: str | None
) -> None:
    params = experiment.params
    known = ", ".join(params) or "none"
    missing = [field for field in fields if field not in params]
    if missing:
        raise ComparisonError(
            UNKNOWN_AGENT_FIELD_MESSAGE.format(
                experiment=experiment.source.label,
                fields=", ".join(repr(field) for field in missing),
                known=known,
            )
        )
    if seed_field is None:
        return
    if seed_field in fields:
        raise ComparisonError(SEED_IN_AGENT_MESSAGE.format(field=seed_field))
    if seed_field not in params:
        raise ComparisonError(
            UNKNOWN_SEED_FIELD_MESSAGE.format(
                experiment=experiment.source.label, field=seed_field, known=known
            )
        )


def apply_price_cutoff(frame: pandas.DataFrame, cutoff: float) -> pandas.DataFrame:
    """A copy where every row that spent more than `cutoff` is unsolved, at the
    cutoff price."""
    frame = frame.copy()
    over = frame["price"] > cutoff
    frame.loc[over, "success"] = False
    frame.loc[over, "price"] = cutoff
    return frame


def agent_table(
    rows: pandas.DataFrame, order: Sequence[str], price_unit: PriceUnit = "dollars"
) -> pandas.DataFrame:
    """Per agent: its experiment, its number of seeds, the problems per seed, and
    the mean and standard deviation over seeds of the problems solved and of the
    mean and median price per problem (`TABLE_COLUMNS`)."""
    per_seed = rows.groupby([AGENT_COLUMN, SEED_COLUMN], sort=False).agg(
        experiment=(EXPERIMENT_COLUMN, "first"),
        problems=("success", "size"),
        problems_solved=("success", "sum"),
        avg_price=("price", "mean"),
        median_price=("price", "median"),
    )
    grouped = per_seed.groupby(level=AGENT_COLUMN, sort=False)
    table = grouped.agg(
        experiment=(EXPERIMENT_COLUMN, "first"),
        seeds=("problems", "size"),
        problems=("problems", "mean"),
        **{
            f"{measure}_{stat}": (measure, stat)
            for measure in MEASURES
            for stat in ("mean", "std")
        },
    )
    if price_unit == "cents":
        for measure in PRICE_MEASURES:
            for stat in ("mean", "std"):
                table[f"{measure}_{stat}"] = table[f"{measure}_{stat}"] * 100
    return table.reindex(list(order)).reset_index()[list(TABLE_COLUMNS)]
