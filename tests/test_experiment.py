from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_delphyne import layout
from pytest_delphyne.configs import ExecutionContext, ExperimentConfig, WorkersSetup
from pytest_delphyne.experiment import Experiment
from pytest_delphyne.identity import InvalidConfigNameError
from pytest_delphyne.lock import ExperimentLockedError
from pytest_delphyne.past_runs import NO_RESULT_MESSAGE, UNKNOWN_CONFIG_MESSAGE
from pytest_delphyne.roster import (
    CONFIG_NOT_IN_STATE_MESSAGE,
    DUPLICATE_NAME_MESSAGE,
    NAME_HOLDER_LISTED,
    NAME_HOLDER_STORED,
    NOT_A_CONFIG_MESSAGE,
    InvalidConfigError,
    UnknownConfigError,
)
from pytest_delphyne.runtime import Run
from pytest_delphyne.state import (
    ConfigInfo,
    ConfigUpdate,
    ExperimentState,
    StateFileError,
    Status,
    utc_now,
)
from pytest_delphyne.state_updates import (
    UNLISTED_CONFIGS_MESSAGE,
    UnlistedConfigsWarning,
)
from pytest_delphyne.summary import MissingResultsError


@dataclass
class Config:
    model: str
    temperature: float = 0.7

    def instantiate(self, context: object) -> Run:
        return Run(program=lambda env: None)


@dataclass
class Answer:
    text: str
    score: float


def by_params(config: Config, _: uuid.UUID) -> str:
    return f"{config.model}_t{config.temperature}"


def make_experiment(
    output_dir: Path, configs: Sequence[Config] | None, **kwargs: Any
) -> Experiment[Config]:
    return Experiment(
        config_class=Config,
        output_dir=output_dir,
        configs=configs,
        config_naming=by_params,
        **kwargs,
    )


def record(experiment: Experiment[Config], name: str, status: Status) -> None:
    now = utc_now()
    experiment.store.record(ConfigUpdate(name, status, now, now))


def write_result(directory: Path, values: list[Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / layout.RESULT_FILE).write_text(
        yaml.safe_dump(
            {
                "config_name": directory.name,
                "duration": 1.0,
                "outcome": {
                    "result": {
                        "success": True,
                        "values": values,
                        "spent_budget": {"num_requests": 1, "price": 0.1},
                    }
                },
            }
        )
    )


def test_a_relative_output_dir_is_relative_to_the_defining_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "project" / "exp.py"
    source.parent.mkdir()
    source.write_text(
        "from dataclasses import dataclass\n"
        "from pytest_delphyne.experiment import Experiment\n"
        "@dataclass\n"
        "class C:\n"
        "    x: int = 0\n"
        "    def instantiate(self, context: object) -> object:\n"
        "        return None\n"
        "experiment = Experiment(config_class=C, output_dir='out/exp')\n"
    )
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("delphyne_test_exp", source)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    experiment = module.experiment
    assert experiment.defined_in == source
    assert experiment.absolute_output_dir == tmp_path / "project" / "out" / "exp"


def test_an_experiment_created_here_is_defined_here() -> None:
    experiment = make_experiment(Path("out"), None)
    assert experiment.defined_in == Path(__file__).absolute()
    assert experiment.absolute_output_dir == Path(__file__).absolute().parent / "out"


def test_a_workspace_root_anchors_a_relative_output_dir(tmp_path: Path) -> None:
    experiment = make_experiment(
        Path("out"), None, context=ExecutionContext(workspace_root=tmp_path)
    )
    assert experiment.absolute_output_dir == tmp_path / "out"


def test_an_absolute_output_dir_stays(tmp_path: Path) -> None:
    assert make_experiment(tmp_path, None).absolute_output_dir == tmp_path


def test_load_creates_the_state_with_every_config_todo(tmp_path: Path) -> None:
    configs = [Config("a"), Config("b", 1)]
    experiment = make_experiment(tmp_path, configs, name="exp", description="d")
    assert experiment.load() is experiment
    assert (tmp_path / layout.STATE_FILE).read_text() == (
        "name: exp\ndescription: d\nconfigs:\n"
        "  a_t0.7:\n    params:\n      model: a\n      temperature: 0.7\n"
        "    status: todo\n    start_time: null\n    end_time: null\n"
        "    interruption_time: null\n"
        "  b_t1.0:\n    params:\n      model: b\n      temperature: 1.0\n"
        "    status: todo\n    start_time: null\n    end_time: null\n"
        "    interruption_time: null\n"
    )
    assert experiment.get_status() == {"todo": 2, "done": 0, "failed": 0}
    assert not experiment.is_done()


def test_load_creates_an_output_dir_whose_parents_do_not_exist(tmp_path: Path) -> None:
    output_dir = tmp_path / "runs" / "2024" / "exp"
    experiment = make_experiment(output_dir, [Config("a")]).load()
    assert list(experiment.load_state().configs) == ["a_t0.7"]
    assert (output_dir / layout.STATE_FILE).is_file()


def test_default_names_are_uuids(tmp_path: Path) -> None:
    experiment = Experiment(
        config_class=Config, output_dir=tmp_path, configs=[Config("a")]
    )
    (name,) = experiment.load().load_state().configs
    assert str(uuid.UUID(name)) == name


def test_load_again_keeps_names_and_adds_new_configs(tmp_path: Path) -> None:
    make_experiment(tmp_path, [Config("a", 1)]).load()
    experiment = make_experiment(tmp_path, [Config("a", 1.0), Config("c")]).load()
    assert list(experiment.load_state().configs) == ["a_t1.0", "c_t0.7"]


def test_configs_equal_by_canonical_form_are_one_config(tmp_path: Path) -> None:
    experiment = make_experiment(tmp_path, [Config("a", 1), Config("a", 1.0)]).load()
    assert list(experiment.load_state().configs) == ["a_t1.0"]


def test_config_names_are_the_names_of_the_listed_configs_in_order(
    tmp_path: Path,
) -> None:
    make_experiment(tmp_path, [Config("a"), Config("b")]).load()
    configs = [Config("b"), Config("c", 1), Config("a")]
    experiment = make_experiment(tmp_path, configs).load()
    assert experiment.config_names() == ["b_t0.7", "c_t1.0", "a_t0.7"]
    # Without load(), or with configs changed since, they are looked up in the state.
    assert make_experiment(tmp_path, configs).config_names() == [
        "b_t0.7",
        "c_t1.0",
        "a_t0.7",
    ]
    experiment.configs = [Config("c", 1.0)]
    assert experiment.config_names() == ["c_t1.0"]
    assert make_experiment(tmp_path, None).config_names() == [
        "a_t0.7",
        "b_t0.7",
        "c_t1.0",
    ]


def test_config_names_of_a_config_not_in_the_state_is_refused(
    tmp_path: Path,
) -> None:
    make_experiment(tmp_path, [Config("a")]).load()
    with pytest.raises(UnknownConfigError) as info:
        make_experiment(tmp_path, [Config("z")]).config_names()
    assert str(info.value) == CONFIG_NOT_IN_STATE_MESSAGE.format(
        config=Config("z"), state_file=tmp_path / layout.STATE_FILE
    )


def test_unlisted_configs_are_kept_with_a_warning(tmp_path: Path) -> None:
    make_experiment(tmp_path, [Config("a"), Config("b")]).load()
    experiment = make_experiment(tmp_path, [Config("a")])
    message = UNLISTED_CONFIGS_MESSAGE.format(
        count=1, state_file=tmp_path / layout.STATE_FILE, names="b_t0.7"
    )
    with pytest.warns(UnlistedConfigsWarning) as warned:
        experiment.load()
    assert [str(w.message) for w in warned] == [message]
    assert list(experiment.load_state().configs) == ["a_t0.7", "b_t0.7"]


def test_clean_index_removes_unlisted_configs(tmp_path: Path) -> None:
    make_experiment(tmp_path, [Config("a"), Config("b")]).load()
    experiment = make_experiment(tmp_path, [Config("a")])
    with pytest.warns(UnlistedConfigsWarning):
        experiment.load()
    experiment.clean_index()
    assert list(make_experiment(tmp_path, None).load_state().configs) == ["a_t0.7"]


def test_mark_errors_as_todos(tmp_path: Path) -> None:
    experiment = make_experiment(tmp_path, [Config("a"), Config("b"), Config("c")])
    experiment.load()
    record(experiment, "a_t0.7", "failed")
    record(experiment, "b_t0.7", "done")
    assert experiment.get_status() == {"todo": 1, "done": 1, "failed": 1}
    experiment.mark_errors_as_todos()
    assert not (tmp_path / layout.JOURNAL_FILE).exists()
    assert make_experiment(tmp_path, None).get_status() == {
        "todo": 2,
        "done": 1,
        "failed": 0,
    }
    assert "status: failed" not in (tmp_path / layout.STATE_FILE).read_text()


def test_is_done_when_every_config_is_done(tmp_path: Path) -> None:
    experiment = make_experiment(tmp_path, [Config("a"), Config("b")]).load()
    record(experiment, "a_t0.7", "done")
    assert not experiment.is_done()
    record(experiment, "b_t0.7", "done")
    assert experiment.is_done()


def test_load_folds_the_journal(tmp_path: Path) -> None:
    experiment = make_experiment(tmp_path, [Config("a")]).load()
    record(experiment, "a_t0.7", "done")
    experiment.store.close()
    make_experiment(tmp_path, [Config("a")]).load()
    assert not (tmp_path / layout.JOURNAL_FILE).exists()
    assert "status: done" in (tmp_path / layout.STATE_FILE).read_text()


def test_a_config_of_another_class_is_refused_before_writing(tmp_path: Path) -> None:
    configs: list[Any] = [Config("a"), Answer("x", 1.0)]
    with pytest.raises(InvalidConfigError) as info:
        make_experiment(tmp_path / "out", configs).load()
    assert str(info.value) == NOT_A_CONFIG_MESSAGE.format(
        index=1, type_name="Answer", class_name="Config"
    )
    assert not (tmp_path / "out").exists()


def test_a_name_given_to_two_configs_is_refused_before_writing(tmp_path: Path) -> None:
    experiment = Experiment(
        config_class=Config,
        output_dir=tmp_path / "out",
        configs=[Config("a"), Config("b")],
        config_naming=lambda config, _: "same",
    )
    with pytest.raises(InvalidConfigError) as info:
        experiment.load()
    holder = NAME_HOLDER_LISTED.format(index=0, config=Config("a"))
    assert str(info.value) == DUPLICATE_NAME_MESSAGE.format(
        name="same", index=1, second=Config("b"), holder=holder
    )
    assert not (tmp_path / "out").exists()


def test_a_name_held_by_a_stored_config_names_the_state_file(tmp_path: Path) -> None:
    Experiment(
        config_class=Config,
        output_dir=tmp_path / "out",
        configs=[Config("a")],
        config_naming=lambda config, _: "same",
    ).load()
    experiment = Experiment(
        config_class=Config,
        output_dir=tmp_path / "out",
        configs=[Config("b")],
        config_naming=lambda config, _: "same",
    )
    with pytest.raises(InvalidConfigError) as info:
        experiment.load()
    holder = NAME_HOLDER_STORED.format(
        config=Config("a"), state_file=tmp_path / "out" / layout.STATE_FILE
    )
    assert str(info.value) == DUPLICATE_NAME_MESSAGE.format(
        name="same", index=0, second=Config("b"), holder=holder
    )


def test_an_unsafe_name_is_refused_before_writing(tmp_path: Path) -> None:
    experiment = Experiment(
        config_class=Config,
        output_dir=tmp_path / "out",
        configs=[Config("a")],
        config_naming=lambda config, _: "../escape",
    )
    with pytest.raises(InvalidConfigNameError, match="path separator"):
        experiment.load()
    assert not (tmp_path / "out").exists()


def test_load_state_before_load_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(StateFileError, match=r"Experiment\.load\(\) creates it"):
        make_experiment(tmp_path, [Config("a")]).get_status()


def test_save_and_load_summary(tmp_path: Path) -> None:
    experiment = make_experiment(tmp_path, [Config("a"), Config("b")]).load()
    with pytest.raises(MissingResultsError):
        experiment.save_summary()
    record(experiment, "a_t0.7", "done")
    write_result(experiment.config_dir("a_t0.7"), [])
    experiment.save_summary(ignore_missing=True, add_timing=True)
    assert experiment.summary_file_path == tmp_path / layout.SUMMARY_FILE
    frame = experiment.load_summary()
    assert list(frame.columns) == [
        "model",
        "temperature",
        "success",
        "num_completions",
        "num_requests",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "price",
        "duration",
        "config_name",
    ]
    assert frame.fillna(-1).to_dict("records") == [
        {
            "model": "a",
            "temperature": 0.7,
            "success": True,
            # As the reference: 0 for a budget the result does not mention, and the
            # duration the state records (`record` started and ended it at once).
            "num_completions": 0,
            "num_requests": 1,
            "input_tokens": 0,
            "cached_input_tokens": 0,
            "output_tokens": 0,
            "price": 0.1,
            "duration": 0.0,
            "config_name": "a_t0.7",
        }
    ]


def test_config_success_values_are_loaded_into_the_given_type(tmp_path: Path) -> None:
    experiment = make_experiment(tmp_path, [Config("a")]).load()
    assert experiment.result_file_path("a_t0.7") == (
        tmp_path / "configs" / "a_t0.7" / "result.yaml"
    )
    write_result(experiment.config_dir("a_t0.7"), [{"text": "hi", "score": 1}])
    expected = [Answer("hi", 1.0)]
    assert experiment.config_success_values_by_name("a_t0.7", type=Answer) == expected
    assert experiment.config_success_values(Config("a", 0.7), type=Answer) == expected


def test_success_values_of_unknown_or_unrun_configs_are_refused(
    tmp_path: Path,
) -> None:
    experiment = make_experiment(tmp_path, [Config("a")]).load()
    state_file = tmp_path / layout.STATE_FILE
    with pytest.raises(UnknownConfigError) as info:
        experiment.config_success_values_by_name("zzz", type=Answer)
    assert str(info.value) == UNKNOWN_CONFIG_MESSAGE.format(
        name="zzz", state_file=state_file
    )
    with pytest.raises(UnknownConfigError) as info:
        experiment.config_success_values(Config("b"), type=Answer)
    assert str(info.value) == CONFIG_NOT_IN_STATE_MESSAGE.format(
        config=Config("b"), state_file=state_file
    )
    with pytest.raises(UnknownConfigError) as info:
        experiment.config_success_values_by_name("a_t0.7", type=Answer)
    assert str(info.value) == NO_RESULT_MESSAGE.format(
        name="a_t0.7", path=experiment.result_file_path("a_t0.7")
    )


def test_workers_setup_holds_its_two_functions() -> None:
    def common() -> int:
        return 8000

    def per_worker(port: int) -> None:
        os.environ.get(str(port))

    setup = WorkersSetup(common=common, per_worker=per_worker)
    experiment = Experiment(
        config_class=Config, output_dir="out", workers_setup=setup, cache_requests=False
    )
    assert experiment.workers_setup is setup
    assert experiment.cache_requests is False
    assert experiment.log_level is None


HOLDER = """
import time
from pathlib import Path
from pytest_delphyne.lock import RunLock
lock = RunLock(Path({directory!r}))
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_load_while_another_process_runs_leaves_its_journal_alone(
    tmp_path: Path,
) -> None:
    experiment = make_experiment(tmp_path, [Config("a")]).load()
    record(experiment, "a_t0.7", "done")
    journal = (tmp_path / layout.JOURNAL_FILE).read_bytes()
    root = Path(layout.__file__).parent.parent
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(directory=str(tmp_path))],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "locked\n"
        reader = make_experiment(tmp_path, [Config("a")]).load()
        assert reader.get_status() == {"todo": 0, "done": 1, "failed": 0}
        assert (tmp_path / layout.JOURNAL_FILE).read_bytes() == journal
        with pytest.raises(ExperimentLockedError, match=f"process {process.pid} on"):
            make_experiment(tmp_path, [Config("a"), Config("new")]).load()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    assert "new_t0.7" not in (tmp_path / layout.STATE_FILE).read_text()


def test_the_package_exports_what_the_launcher_exported() -> None:
    import pytest_delphyne
    from pytest_delphyne.cli import ExperimentCLI

    assert pytest_delphyne.ExperimentCLI is ExperimentCLI
    exported = {
        "ExperimentConfig": ExperimentConfig,
        "ExperimentState": ExperimentState,
        "ConfigInfo": ConfigInfo,
        "WorkersSetup": WorkersSetup,
    }
    for name, defined in exported.items():
        assert name in pytest_delphyne.__all__
        assert getattr(pytest_delphyne, name) is defined
    out = Path("out")
    assert pytest_delphyne.result_file_path(out, "c1") == layout.result_file_path(
        out, "c1"
    )
    assert pytest_delphyne.summary_file_path(out) == out / layout.SUMMARY_FILE
    assert pytest_delphyne.path_stem("dir/exp.py") == "exp"


def test_plain_params_are_the_dumped_params_loaded_or_not(tmp_path: Path) -> None:
    # As `--co`'s plan shows them: from what `load()` dumped, or dumped afresh for
    # a config it did not see (a stored one, or a session that has not loaded).
    experiment = make_experiment(tmp_path, [Config("a", 1)])
    assert experiment.plain_params("a_t1.0", Config("a", 1)) == {
        "model": "a",
        "temperature": 1.0,
    }
    experiment.load()
    stored = experiment.load_state().configs["a_t1.0"].params
    assert experiment.plain_params("a_t1.0", stored) == {
        "model": "a",
        "temperature": 1.0,
    }
    assert experiment.plain_params("b_t0.7", Config("b")) == {
        "model": "b",
        "temperature": 0.7,
    }
    # Other params under a name load() saw are dumped, not taken for the stored ones.
    assert experiment.plain_params("a_t1.0", Config("a", 2.0)) == {
        "model": "a",
        "temperature": 2.0,
    }


def test_config_names_after_load_are_what_it_found_until_configs_are_resized(
    tmp_path: Path,
) -> None:
    configs = [Config("a"), Config("b")]
    experiment = make_experiment(tmp_path, configs).load()
    # What load() found is not looked up again (100,000 canonical keys): the state
    # is not even read.
    state_file = tmp_path / layout.STATE_FILE
    state_file.rename(tmp_path / "elsewhere.yaml")
    assert experiment.config_names() == ["a_t0.7", "b_t0.7"]
    (tmp_path / "elsewhere.yaml").rename(state_file)
    configs.append(Config("a", 0.7))
    assert experiment.config_names() == ["a_t0.7", "b_t0.7", "a_t0.7"]
    # Replaced by a list of the same length: looked up again.
    experiment.configs = [Config("b"), Config("a"), Config("b")]
    assert experiment.config_names() == ["b_t0.7", "a_t0.7", "b_t0.7"]


def test_names_in_state_counts_the_listed_configs_it_lacks(tmp_path: Path) -> None:
    make_experiment(tmp_path, [Config("a"), Config("b")]).load()
    listed = [Config("z"), Config("b"), Config("y"), Config("a")]
    experiment = make_experiment(tmp_path, listed)
    assert experiment.names_in_state() == (["b_t0.7", "a_t0.7"], 2)
