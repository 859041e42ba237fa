from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

import pytest_delphyne
from pytest_delphyne import layout
from pytest_delphyne.identity import codec_for
from pytest_delphyne.results import ResultFileError
from pytest_delphyne.state import ConfigInfo, ExperimentState
from pytest_delphyne.summary import (
    MISSING_RESULTS_MESSAGE,
    NO_SUMMARY_MESSAGE,
    SPENT_PREFIX,
    MissingResultsError,
    MissingSummaryError,
    load_summary,
    param_columns,
    save_summary,
    summary_rows,
)


@dataclass
class Sampling:
    temperature: float = 0.7
    stop: list[str] = field(default_factory=list)


@dataclass
class Config:
    model: str
    sampling: Sampling = field(default_factory=Sampling)

    def instantiate(self, context: object) -> object:
        return None


def write_result(
    output_dir: Path,
    name: str,
    *,
    success: bool,
    price: float,
    duration: float = 1.5,
    values: list[Any] | None = None,
) -> None:
    path = layout.result_file_path(output_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "config_name": name,
        "params": {},
        "start_time": "2024-05-01T12:00:00+00:00",
        "end_time": "2024-05-01T12:00:01.500000+00:00",
        "duration": duration,
        "outcome": {
            "result": {
                "success": success,
                "values": values or [],
                "spent_budget": {
                    "num_requests": 2,
                    "num_completions": 3,
                    "input_tokens": 100,
                    "cached_input_tokens": 10,
                    "output_tokens": 50,
                    "price": price,
                },
            }
        },
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def make_state(**statuses: Any) -> ExperimentState[Config]:
    return ExperimentState(
        None,
        None,
        {
            name: ConfigInfo(Config(name, Sampling(0.5, ["\n"])), status)
            for name, status in statuses.items()
        },
    )


def test_summary_has_the_seed_columns_then_config_name(tmp_path: Path) -> None:
    write_result(tmp_path, "a", success=True, price=0.25)
    write_result(tmp_path, "b", success=False, price=0.5)
    state = make_state(a="done", b="done")
    path = save_summary(tmp_path, state, codec_for(Config))
    assert path == tmp_path / layout.SUMMARY_FILE
    assert path.read_text() == (
        "model,sampling.temperature,sampling.stop,success,num_completions,"
        "num_requests,input_tokens,cached_input_tokens,output_tokens,price,config_name\n"
        "a,0.5,['\\n'],True,3,2,100,10,50,0.25,a\n"
        "b,0.5,['\\n'],False,3,2,100,10,50,0.5,b\n"
    )


@dataclass
class Retrieval:
    k: int = 4


@dataclass
class OptionalConfig:
    model: str
    retrieval: Retrieval | None = None
    seed: int | None = None

    def instantiate(self, context: object) -> object:
        return None


def test_columns_that_only_later_configs_have_are_kept(tmp_path: Path) -> None:
    state = ExperimentState(
        None,
        None,
        {
            "a": ConfigInfo(OptionalConfig("m"), "done"),
            "b": ConfigInfo(OptionalConfig("m", Retrieval(8)), "done"),
        },
    )
    write_result(tmp_path, "a", success=True, price=0.25)
    write_result(tmp_path, "b", success=True, price=0.5)
    save_summary(tmp_path, state, codec_for(OptionalConfig))
    assert (tmp_path / layout.SUMMARY_FILE).read_text() == (
        "model,retrieval,seed,retrieval.k,success,num_completions,num_requests,"
        "input_tokens,cached_input_tokens,output_tokens,price,config_name\n"
        "m,,,,True,3,2,100,10,50,0.25,a\n"
        "m,,,8.0,True,3,2,100,10,50,0.5,b\n"
    )


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2025, 11, 5, 19, 23, 36, 877135), datetime(2025, 11, 5, 19, 23, 39)),
        (
            datetime(2025, 11, 5, 19, 23, 36, 877135, tzinfo=UTC),
            datetime(2025, 11, 5, 19, 23, 39, tzinfo=UTC),
        ),
    ],
    ids=["naive-as-the-reference-writes", "utc"],
)
def test_add_timing_adds_the_duration_the_state_records(
    tmp_path: Path, start: datetime, end: datetime
) -> None:
    # The file's own duration is not the reference's: end - start from the state is.
    write_result(tmp_path, "a", success=True, price=0.25, duration=99.0)
    state = make_state(a="done")
    state.configs["a"] = replace(state.configs["a"], start_time=start, end_time=end)
    save_summary(tmp_path, state, codec_for(Config), add_timing=True)
    header, row = (tmp_path / layout.SUMMARY_FILE).read_text().splitlines()
    assert header.endswith(",price,duration,config_name")
    assert row.endswith(",0.25,2.122865,a")


def test_a_budget_the_result_does_not_mention_is_zero(tmp_path: Path) -> None:
    path = layout.result_file_path(tmp_path, "a")
    path.parent.mkdir(parents=True)
    path.write_text("outcome:\n  result:\n    success: true\n    spent_budget: {}\n")
    save_summary(tmp_path, make_state(a="done"), codec_for(Config))
    row = (tmp_path / layout.SUMMARY_FILE).read_text().splitlines()[1]
    assert row.endswith(",True,0,0,0,0,0,0,a")


@dataclass
class SamplingConfig:
    model: str
    num_completions: int

    def instantiate(self, context: object) -> object:
        return None


def test_a_param_named_like_a_budget_keeps_its_column(tmp_path: Path) -> None:
    write_result(tmp_path, "a", success=True, price=0.25)
    state = ExperimentState(
        None, None, {"a": ConfigInfo(SamplingConfig("m", 8), "done")}
    )
    save_summary(tmp_path, state, codec_for(SamplingConfig))
    assert (tmp_path / layout.SUMMARY_FILE).read_text() == (
        f"model,num_completions,success,{SPENT_PREFIX}num_completions,num_requests,"
        "input_tokens,cached_input_tokens,output_tokens,price,config_name\n"
        "m,8,True,3,2,100,10,50,0.25,a\n"
    )


def test_missing_results_are_named(tmp_path: Path) -> None:
    write_result(tmp_path, "a", success=True, price=0.25)
    state = make_state(a="done", b="todo", c="failed", d="done")
    with pytest.raises(MissingResultsError) as info:
        save_summary(tmp_path, state, codec_for(Config))
    assert str(info.value) == MISSING_RESULTS_MESSAGE.format(
        count=3, output_dir=tmp_path, names="b, c, d"
    )
    assert not (tmp_path / layout.SUMMARY_FILE).exists()


@pytest.mark.parametrize(
    ("count", "suffix"), [(10, ""), (11, " and 1 more"), (13, " and 3 more")]
)
def test_missing_results_name_ten_configs_then_count_the_rest(
    tmp_path: Path, count: int, suffix: str
) -> None:
    names = [f"c{i:02}" for i in range(count)]
    with pytest.raises(MissingResultsError) as info:
        save_summary(
            tmp_path, make_state(**dict.fromkeys(names, "todo")), codec_for(Config)
        )
    assert str(info.value) == MISSING_RESULTS_MESSAGE.format(
        count=count, output_dir=tmp_path, names=", ".join(names[:10]) + suffix
    )


def test_summary_rows_refuse_missing_results_unless_told_to_ignore_them(
    tmp_path: Path,
) -> None:
    write_result(tmp_path, "a", success=True, price=0.25)
    state = make_state(a="done", b="todo")
    with pytest.raises(MissingResultsError):
        summary_rows(tmp_path, state, codec_for(Config))
    # Without add_timing, no duration.
    assert summary_rows(tmp_path, state, codec_for(Config), ignore_missing=True) == [
        {
            "model": "a",
            "sampling.temperature": 0.5,
            "sampling.stop": "['\\n']",
            "success": True,
            "num_completions": 3,
            "num_requests": 2,
            "input_tokens": 100,
            "cached_input_tokens": 10,
            "output_tokens": 50,
            "price": 0.25,
            "config_name": "a",
        }
    ]


def test_a_done_config_without_its_result_hides_none_after_it(tmp_path: Path) -> None:
    write_result(tmp_path, "c", success=True, price=0.25)
    state = make_state(a="done", b="done", c="done")
    with pytest.raises(MissingResultsError) as info:
        save_summary(tmp_path, state, codec_for(Config))
    assert info.value.names == ["a", "b"]
    save_summary(tmp_path, state, codec_for(Config), ignore_missing=True)
    rows = (tmp_path / layout.SUMMARY_FILE).read_text().splitlines()[1:]
    assert [row.rsplit(",", 1)[1] for row in rows] == ["c"]


def test_ignore_missing_leaves_configs_without_result_out(tmp_path: Path) -> None:
    write_result(tmp_path, "a", success=True, price=0.25)
    state = make_state(a="done", b="todo")
    save_summary(tmp_path, state, codec_for(Config), ignore_missing=True)
    frame = load_summary(tmp_path)
    assert list(frame["config_name"]) == ["a"]
    assert list(frame["price"]) == [0.25]
    assert list(frame["success"]) == [True]


def test_an_empty_state_gives_a_header_only_summary(tmp_path: Path) -> None:
    save_summary(tmp_path, make_state(), codec_for(Config))
    assert (tmp_path / layout.SUMMARY_FILE).read_text() == (
        "success,num_completions,num_requests,input_tokens,cached_input_tokens,"
        "output_tokens,price,config_name\n"
    )


def test_a_result_file_without_an_outcome_is_refused(tmp_path: Path) -> None:
    path = layout.result_file_path(tmp_path, "a")
    path.parent.mkdir(parents=True)
    path.write_text("config_name: a\n")
    with pytest.raises(ResultFileError, match=r"no 'outcome\.result' mapping"):
        save_summary(tmp_path, make_state(a="done"), codec_for(Config))


def test_load_summary_before_save_summary_says_so(tmp_path: Path) -> None:
    with pytest.raises(MissingSummaryError) as info:
        load_summary(tmp_path)
    assert str(info.value) == NO_SUMMARY_MESSAGE.format(
        path=tmp_path / layout.SUMMARY_FILE
    )


@pytest.mark.parametrize(
    ("params", "flat"),
    [
        ({"a": 1}, {"a": 1}),
        ({"a": {"b": {"c": 2}}, "d": None}, {"a.b.c": 2, "d": None}),
        # As pandas writes a list: Python's text of it.
        ({"xs": [1, "y"]}, {"xs": "[1, 'y']"}),
        ({"pairs": [["gpt-4.1-nano", 2]]}, {"pairs": "[['gpt-4.1-nano', 2]]"}),
    ],
)
def test_param_columns(params: dict[str, Any], flat: dict[str, Any]) -> None:
    assert param_columns(params) == flat


def test_importing_the_summary_module_does_not_import_pandas() -> None:
    code = "import sys, pytest_delphyne.summary; print('pandas' in sys.modules)"
    root = Path(pytest_delphyne.__file__).parent.parent
    output = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    ).stdout
    assert output == "False\n"


def test_summary_csv_is_what_pandas_writes() -> None:
    """The summary is written without pandas; a reader must not see the difference."""
    import random

    import pandas

    from pytest_delphyne.summary import csv_text

    choices: dict[str, list[Any]] = {
        "model": ["gpt-4o", "a,b", 'say "hi"', "two\nlines", "", None],
        "temperature": [0.1, 0.7, 1.0, 1e-05, 1e16, 0.1 + 0.2],
        "seed": [0, 7, -3, 10**12],
        "optional_int": [1, 2, None],
        "int_or_float": [1, 2.5],
        "flag": [True, False],
        "optional_flag": [True, None],
        "success": [True, False],
        "price": [0.0012, 0, 3],
        "never_set": [None],
    }
    generator = random.Random(8)
    rows = [
        {column: generator.choice(values) for column, values in choices.items()}
        | {"config_name": f"c{index}"}
        for index in range(300)
    ]
    columns = list(rows[0])
    expected = pandas.DataFrame(rows, columns=columns).to_csv(index=False)
    assert csv_text(rows, columns) == expected


def test_summary_takes_known_results_without_reading_their_files(
    tmp_path: Path,
) -> None:
    from pytest_delphyne.summary import KnownResult

    write_result(tmp_path, "a", success=False, price=0.5)
    write_result(tmp_path, "b", success=False, price=0.5)
    spent = {
        "num_requests": 1,
        "num_completions": 1,
        "input_tokens": 9,
        "cached_input_tokens": 0,
        "output_tokens": 4,
        "price": 0.25,
    }
    known = {"a": KnownResult(success=True, spent_budget=spent)}
    state = make_state(a="done", b="done")
    path = save_summary(tmp_path, state, codec_for(Config), known=known)
    rows = path.read_text().splitlines()
    assert rows[1].endswith(",True,1,1,9,0,4,0.25,a")
    assert rows[2].endswith(",False,3,2,100,10,50,0.5,b")
    # The duration comes from the state: known results are taken with add_timing too.
    path = save_summary(
        tmp_path, make_state(a="done"), codec_for(Config), known=known, add_timing=True
    )
    assert path.read_text().splitlines()[1].endswith(",True,1,1,9,0,4,0.25,,a")
