from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

import pytest_delphyne
from pytest_delphyne import layout, state_store
from pytest_delphyne.files import atomic_write
from pytest_delphyne.identity import ConfigParamsError, codec_for
from pytest_delphyne.journal import read_journal
from pytest_delphyne.lock import (
    LOCKED_MESSAGE,
    ExperimentLockedError,
    LockHolder,
    RunLock,
    read_lock_holder,
)
from pytest_delphyne.state import (
    INVALID_TIME_PROBLEM,
    INVALID_YAML_PROBLEM,
    NO_STATE_PROBLEM,
    STATE_SHAPE_PROBLEM,
    UNKNOWN_STATUS_PROBLEM,
    ConfigInfo,
    ConfigUpdate,
    ExperimentState,
    StateFileError,
    aware_time,
    params_key,
)
from pytest_delphyne.state_store import StateEditedError, StateStore

REPO_ROOT = Path(pytest_delphyne.__file__).parent.parent
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
T1 = datetime(2024, 5, 1, 12, 0, 30, 500000, tzinfo=UTC)


@dataclass
class Config:
    model: str
    temperature: float = 0.7

    def instantiate(self, context: object) -> object:
        return None


STATE_TEXT = """\
name: exp
description: a test
configs:
  a:
    params:
      model: small
      temperature: 0.7
    status: done
    start_time: 2024-05-01 12:00:00+00:00
    end_time: 2024-05-01 12:00:30.500000+00:00
    interruption_time: null
  b:
    params:
      model: large
      temperature: 1.0
    status: todo
    start_time: null
    end_time: null
    interruption_time: null
"""


def make_state() -> ExperimentState[Config]:
    return ExperimentState(
        name="exp",
        description="a test",
        configs={
            "a": ConfigInfo(Config("small"), "done", T0, T1),
            "b": ConfigInfo(Config("large", 1.0)),
        },
    )


def make_store(directory: Path) -> StateStore[Config]:
    return StateStore(directory, codec_for(Config))


def python_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("old")
    atomic_write(path, "new\n")
    assert path.read_text() == "new\n"
    assert os.listdir(tmp_path) == ["f.yaml"]


@pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="reads a descriptor's path from /proc"
)
def test_atomic_write_syncs_the_text_before_the_rename_and_the_rename_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A machine crash after an unsynced rename can leave an empty file in place of
    # the state: the text must be on disk before the rename, the rename after it.
    path = tmp_path / "f.yaml"
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        target = Path(os.readlink(f"/proc/self/fd/{fd}"))
        content = target.read_text() if target.is_file() else "<dir>"
        events.append(("fsync", f"{target.name}: {content}"))
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        events.append(("replace", Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write(path, "new\n")
    assert events == [
        ("fsync", f".f.yaml.{os.getpid()}.tmp: new\n"),
        ("replace", "f.yaml"),
        ("fsync", f"{tmp_path.name}: <dir>"),
    ]
    events.clear()
    atomic_write(path, "cache\n", durable=False)
    assert events == [("replace", "f.yaml")]


def test_save_writes_the_seed_format(tmp_path: Path) -> None:
    make_store(tmp_path).save(make_state())
    assert (tmp_path / layout.STATE_FILE).read_text() == STATE_TEXT


def test_load_reads_back_what_save_wrote(tmp_path: Path) -> None:
    make_store(tmp_path).save(make_state())
    assert make_store(tmp_path).load() == make_state()


def test_load_without_a_state_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(StateFileError) as info:
        make_store(tmp_path).load()
    assert str(info.value) == f"{tmp_path / layout.STATE_FILE}: {NO_STATE_PROBLEM}"


def test_a_state_without_a_newer_defaulted_field_takes_the_default(
    tmp_path: Path,
) -> None:
    (tmp_path / layout.STATE_FILE).write_text(
        "name: null\ndescription: null\nconfigs:\n"
        "  old:\n    params:\n      model: small\n    status: todo\n"
    )
    state = make_store(tmp_path).load()
    assert state.configs == {"old": ConfigInfo(Config("small", 0.7))}


def test_record_appends_one_json_line(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.save(make_state())
    store.record(ConfigUpdate("b", "failed", T0, T1))
    store.record(ConfigUpdate("a", "todo", T0, None, T1))
    store.close()
    lines = (tmp_path / layout.JOURNAL_FILE).read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "name": "b",
            "status": "failed",
            "start_time": "2024-05-01T12:00:00+00:00",
            "end_time": "2024-05-01T12:00:30.500000+00:00",
            "interruption_time": None,
        },
        {
            "name": "a",
            "status": "todo",
            "start_time": "2024-05-01T12:00:00+00:00",
            "end_time": None,
            "interruption_time": "2024-05-01T12:00:30.500000+00:00",
        },
    ]
    assert (tmp_path / layout.STATE_FILE).read_text() == STATE_TEXT


def test_load_applies_the_journal_and_save_folds_it(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.save(make_state())
    store.record(ConfigUpdate("b", "failed", T0, T1))
    expected = make_state()
    expected.configs["b"] = ConfigInfo(Config("large", 1.0), "failed", T0, T1)
    assert make_store(tmp_path).load() == expected
    assert store.load() == expected
    folded = make_store(tmp_path).fold()
    assert folded == expected
    assert not (tmp_path / layout.JOURNAL_FILE).exists()
    assert make_store(tmp_path).load() == expected
    assert (
        "  b:\n    params:\n      model: large\n      temperature: 1.0\n"
        in (tmp_path / layout.STATE_FILE).read_text()
    )


def test_load_after_another_process_changed_the_file_rereads_it(
    tmp_path: Path,
) -> None:
    store = make_store(tmp_path)
    store.save(make_state())
    assert store.load().configs["b"].status == "todo"
    other = make_store(tmp_path)
    other.record(ConfigUpdate("b", "done", T0, T1))
    other.close()
    assert store.load().configs["b"].status == "done"


def test_a_torn_last_journal_line_is_ignored_and_cut_before_appending(
    tmp_path: Path,
) -> None:
    store = make_store(tmp_path)
    store.save(make_state())
    journal = tmp_path / layout.JOURNAL_FILE
    done = ConfigUpdate("b", "done", T0, T1)
    journal.write_text(done.to_json() + "\n" + '{"name": "a", "sta')
    assert read_journal(journal) == [done]
    assert store.load().configs["b"].status == "done"
    store.record(ConfigUpdate("a", "failed", T0, T1))
    store.close()
    assert journal.read_text() == (
        done.to_json() + "\n" + ConfigUpdate("a", "failed", T0, T1).to_json() + "\n"
    )


def test_blank_journal_lines_are_skipped_and_the_entries_after_them_read(
    tmp_path: Path,
) -> None:
    journal = tmp_path / layout.JOURNAL_FILE
    done, failed = ConfigUpdate("b", "done", T0, T1), ConfigUpdate("a", "failed")
    journal.write_text(f"{done.to_json()}\n\n  \n{failed.to_json()}\n")
    assert read_journal(journal) == [done, failed]


def test_a_corrupt_complete_journal_line_names_the_journal_and_line(
    tmp_path: Path,
) -> None:
    make_store(tmp_path).save(make_state())
    journal = tmp_path / layout.JOURNAL_FILE
    journal.write_text(ConfigUpdate("b", "done").to_json() + "\nnot json\n")
    with pytest.raises(StateFileError) as info:
        make_store(tmp_path).load()
    assert str(info.value).startswith(f"{journal}:2: invalid journal entry")


def test_journal_records_that_no_longer_fit_the_state_are_set_aside_not_applied(
    tmp_path: Path,
) -> None:
    make_store(tmp_path).save(make_state())
    ran_with = params_key({"model": "large", "temperature": 1.0})
    unknown = ConfigUpdate("zzz", "done", T0, T1)
    edited = ConfigUpdate("b", "done", T0, T1, params=ran_with)
    journal = tmp_path / layout.JOURNAL_FILE
    journal.write_text(unknown.to_json() + "\n" + edited.to_json() + "\n")
    # A person changes the params of b after it ran with the old ones.
    state_file = tmp_path / layout.STATE_FILE
    state_file.write_text(state_file.read_text().replace("large", "huge"))

    store = make_store(tmp_path)
    state = store.load()

    assert state.configs["b"] == ConfigInfo(Config("huge", 1.0))
    assert store.set_aside == [unknown, edited]
    store.save(state)
    aside = (tmp_path / layout.JOURNAL_ASIDE_FILE).read_text().splitlines()
    assert aside == [unknown.to_json(), edited.to_json()]
    assert not journal.exists()
    again = make_store(tmp_path)
    assert again.load() == state
    assert again.set_aside == []


def test_fold_over_a_state_edited_since_it_was_read_is_refused(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.save(make_state())
    store.record(ConfigUpdate("b", "done", T0, T1))
    state_file = tmp_path / layout.STATE_FILE
    edited = state_file.read_text().replace("a test", "edited by hand")
    state_file.write_text(edited)

    with pytest.raises(StateEditedError):
        store.fold()

    assert state_file.read_text() == edited
    assert read_journal(tmp_path / layout.JOURNAL_FILE) == [
        ConfigUpdate("b", "done", T0, T1)
    ]
    # The next reader applies the journal over the edit.
    assert make_store(tmp_path).fold().configs["b"].status == "done"


def test_corrupt_yaml_names_file_and_line_and_leaves_the_file_untouched(
    tmp_path: Path,
) -> None:
    path = tmp_path / layout.STATE_FILE
    broken = STATE_TEXT.replace("    status: todo", "    status: todo: x")
    path.write_bytes(broken.encode())
    with pytest.raises(StateFileError) as info:
        make_store(tmp_path).fold()
    assert info.value.path == path
    assert info.value.line == 16
    assert str(info.value).startswith(f"{path}:16: not valid YAML (")
    assert path.read_bytes() == broken.encode()
    assert os.listdir(tmp_path) == [layout.STATE_FILE]


def test_truncated_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / layout.STATE_FILE
    path.write_text(STATE_TEXT[: STATE_TEXT.index("status: todo") + len("status: to")])
    with pytest.raises(StateFileError) as info:
        make_store(tmp_path).load()
    problem = UNKNOWN_STATUS_PROBLEM.format(config_name="b", status="to")
    assert str(info.value) == f"{path}:12: {problem}"


def test_an_unknown_status_names_the_config(tmp_path: Path) -> None:
    path = tmp_path / layout.STATE_FILE
    path.write_text(STATE_TEXT.replace("status: done", "status: finished"))
    with pytest.raises(StateFileError) as info:
        make_store(tmp_path).load()
    problem = UNKNOWN_STATUS_PROBLEM.format(config_name="a", status="finished")
    assert str(info.value) == f"{path}:4: {problem}"


def test_an_invalid_time_names_the_config_and_field(tmp_path: Path) -> None:
    path = tmp_path / layout.STATE_FILE
    path.write_text(STATE_TEXT.replace("2024-05-01 12:00:00+00:00", "yesterday"))
    with pytest.raises(StateFileError) as info:
        make_store(tmp_path).load()
    problem = INVALID_TIME_PROBLEM.format(
        config_name="a", field="start_time", value="yesterday"
    )
    assert str(info.value) == f"{path}:4: {problem}"


def test_params_that_no_longer_fit_name_the_config_and_field(tmp_path: Path) -> None:
    path = tmp_path / layout.STATE_FILE
    path.write_text(STATE_TEXT.replace("temperature: 1.0", "temperature: hot"))
    with pytest.raises(ConfigParamsError) as info:
        make_store(tmp_path).load()
    assert info.value.config_name == "b"
    assert "'b'" in str(info.value)
    assert "params.temperature" in str(info.value)


def test_a_state_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / layout.STATE_FILE
    path.write_text("- just\n- a list\n")
    with pytest.raises(StateFileError, match="expected a mapping"):
        make_store(tmp_path).load()


RECORDER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_state import Config, make_store
from pytest_delphyne.state import ConfigInfo, ConfigUpdate, ExperimentState

store = make_store(Path({directory!r}))
names = [f"c{{i}}" for i in range(2000)]
store.save(ExperimentState(None, None, {{n: ConfigInfo(Config(n)) for n in names}}))
print("ready", flush=True)
for name in names:
    store.record(ConfigUpdate(name, "done"))
    # Long lines fill the pipe quickly: the recorder then blocks, still alive, until
    # the test kills it.
    print(name, "." * 1000, flush=True)
"""


def test_recorded_results_survive_sigkill_of_the_recorder(tmp_path: Path) -> None:
    script = RECORDER.format(tests=str(Path(__file__).parent), directory=str(tmp_path))
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdout=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    reported = [process.stdout.readline().split()[0] for _ in range(200)]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    state = make_store(tmp_path).load()
    done = {name for name, info in state.configs.items() if info.status == "done"}
    assert set(reported) <= done
    assert len(done) >= 200


HOLDER = """
import sys, time
from pathlib import Path
from pytest_delphyne.lock import RunLock
lock = RunLock(Path({directory!r}))
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_locker_is_refused_until_the_holder_is_killed(
    tmp_path: Path,
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(directory=str(tmp_path))],
        stdout=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "locked\n"
        with pytest.raises(ExperimentLockedError) as info:
            RunLock(tmp_path).acquire()
        holder = read_lock_holder(tmp_path)
        assert holder is not None
        assert holder.pid == process.pid
        assert str(info.value) == LOCKED_MESSAGE.format(
            output_dir=tmp_path, holder=holder.describe()
        )
        assert f"process {process.pid} on " in str(info.value)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    with RunLock(tmp_path) as lock:
        assert lock.is_held
        assert read_lock_holder(tmp_path) == LockHolder(
            os.getpid(), *_holder_rest(tmp_path)
        )
    assert not (tmp_path / layout.LOCK_HOLDER_FILE).exists()


def _holder_rest(directory: Path) -> tuple[str, str, str]:
    holder = read_lock_holder(directory)
    assert holder is not None
    return holder.host, holder.command, holder.since


def test_the_lock_is_reentrant_within_its_process(tmp_path: Path) -> None:
    with RunLock(tmp_path), RunLock(tmp_path) as inner:
        assert inner.is_held
    assert not RunLock(tmp_path).is_held
    # No directory, no lock held on it.
    assert not RunLock(tmp_path / "missing").is_held


def test_save_writes_an_index_that_the_next_load_reads(tmp_path: Path) -> None:
    make_store(tmp_path).save(make_state())
    index = json.loads((tmp_path / layout.STATE_INDEX_FILE).read_text())
    yaml_data = yaml.safe_load((tmp_path / layout.STATE_FILE).read_text())
    # The same state; the index has the YAML's timestamps as ISO text.
    yaml_data["configs"]["a"]["start_time"] = T0.isoformat()
    yaml_data["configs"]["a"]["end_time"] = T1.isoformat()
    assert index["state"] == yaml_data
    assert make_store(tmp_path).load() == make_state()


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(
            lambda text: text.replace("model: large", "model: huge"), id="value"
        ),
        # Same size: only the content says the file changed.
        pytest.param(lambda text: text.replace("large", "LARGE"), id="same-size"),
        pytest.param(lambda text: text + "# a comment\n", id="comment"),
    ],
)
def test_hand_edit_of_the_yaml_wins_over_the_index(
    tmp_path: Path, edit: Callable[[str], str]
) -> None:
    store = make_store(tmp_path)
    store.save(make_state())
    path = tmp_path / layout.STATE_FILE
    stat = path.stat()
    path.write_text(edit(path.read_text()))
    # Even with the size and modification time it had when the index was written.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    loaded = make_store(tmp_path).load()
    expected = yaml.safe_load(path.read_text())["configs"]["b"]["params"]["model"]
    assert loaded.configs["b"].params.model == expected
    # Reading writes nothing: the index stays stale until the next save.
    index_path = tmp_path / layout.STATE_INDEX_FILE
    index = json.loads(index_path.read_text())
    assert index["state"]["configs"]["b"]["params"]["model"] == "large"
    assert make_store(tmp_path).load().configs["b"].params.model == expected
    make_store(tmp_path).save(loaded)
    index = json.loads(index_path.read_text())
    assert index["state"]["configs"]["b"]["params"]["model"] == expected


def test_index_that_is_not_json_is_ignored(tmp_path: Path) -> None:
    make_store(tmp_path).save(make_state())
    (tmp_path / layout.STATE_INDEX_FILE).write_text("{not json")
    assert make_store(tmp_path).load() == make_state()


def test_index_is_only_a_copy_of_what_the_yaml_says(tmp_path: Path) -> None:
    # An index claiming other params for the same YAML bytes is not how the project
    # writes it, but it shows the index is never trusted for a different file.
    make_store(tmp_path).save(make_state())
    index_path = tmp_path / layout.STATE_INDEX_FILE
    index = json.loads(index_path.read_text())
    index["sha256 of experiment.yaml"] = "0" * 64
    index["state"]["configs"]["b"]["params"]["model"] = "forged"
    index_path.write_text(json.dumps(index))
    assert make_store(tmp_path).load().configs["b"].params.model == "large"


def test_yaml_with_quoted_iso_times_is_read_as_before(tmp_path: Path) -> None:
    # As this project wrote states before times became YAML timestamps.
    path = tmp_path / layout.STATE_FILE
    path.write_text(
        STATE_TEXT.replace(
            "start_time: 2024-05-01 12:00:00+00:00",
            "start_time: '2024-05-01T12:00:00+00:00'",
        )
    )
    assert make_store(tmp_path).load() == make_state()
    assert not (tmp_path / layout.STATE_INDEX_FILE).exists()
    make_store(tmp_path).save(make_state())
    assert make_store(tmp_path).load() == make_state()  # from the index


def test_naive_times_are_kept_naive_through_the_index_and_a_save(
    tmp_path: Path,
) -> None:
    # As the reference launcher writes them: local time, no zone.
    path = tmp_path / layout.STATE_FILE
    path.write_text(
        STATE_TEXT.replace("12:00:00+00:00", "12:00:00").replace(
            "12:00:30.500000+00:00", "12:00:30.500000"
        )
    )
    naive = make_state()
    naive.configs["a"] = ConfigInfo(
        Config("small"), "done", T0.replace(tzinfo=None), T1.replace(tzinfo=None)
    )
    assert make_store(tmp_path).load() == naive
    assert make_store(tmp_path).load() == naive  # from the index
    make_store(tmp_path).save(naive)
    assert "    start_time: 2024-05-01 12:00:00\n" in path.read_text()


def test_inverse_mapping_finds_configs_given_in_another_form() -> None:
    state = ExperimentState(
        None, None, {"a": ConfigInfo(Config("small", 1)), "b": ConfigInfo(Config("x"))}
    )
    name_of = state.inverse_mapping()
    # An int in a float field is the same config as its float.
    assert name_of(Config("small", 1.0)) == "a"
    assert name_of(Config("small", 1)) == "a"
    assert name_of(Config("x", 0.7)) == "b"
    assert name_of(Config("y")) is None


def forge_index(directory: Path, **changes: object) -> None:
    """Rewrite the index as the project never does: `changes` to its top level, and
    config b's model "forged", so that a load shows whether it read the index."""
    index_path = directory / layout.STATE_INDEX_FILE
    index = json.loads(index_path.read_text())
    index.update(changes)
    index["state"]["configs"]["b"]["params"]["model"] = "forged"
    index_path.write_text(json.dumps(index))


def test_an_index_naming_the_yaml_bytes_spares_the_yaml_parse(tmp_path: Path) -> None:
    make_store(tmp_path).save(make_state())
    forge_index(tmp_path)
    assert make_store(tmp_path).load().configs["b"].params.model == "forged"


@pytest.mark.parametrize("index_format", [0, 2, None])
def test_an_index_of_another_format_is_not_read(
    tmp_path: Path, index_format: object
) -> None:
    make_store(tmp_path).save(make_state())
    forge_index(tmp_path, format=index_format)
    assert make_store(tmp_path).load().configs["b"].params.model == "large"


def test_an_index_that_is_not_a_mapping_is_not_read(tmp_path: Path) -> None:
    make_store(tmp_path).save(make_state())
    (tmp_path / layout.STATE_INDEX_FILE).write_text("[1, 2]")
    assert make_store(tmp_path).load() == make_state()


@pytest.mark.parametrize(
    ("configs", "expected", "found"),
    [
        ("  a:\n", "a mapping for config 'a'", "nothing"),
        ("  a: [1, 2]\n", "a mapping for config 'a'", "a list"),
        ("  a: 3\n", "a mapping for config 'a'", "a int"),
    ],
)
def test_a_config_entry_that_is_not_a_mapping_is_named(
    tmp_path: Path, configs: str, expected: str, found: str
) -> None:
    (tmp_path / layout.STATE_FILE).write_text(f"name: exp\nconfigs:\n{configs}")
    with pytest.raises(StateFileError) as info:
        make_store(tmp_path).load()
    assert str(info.value) == str(
        StateFileError(
            tmp_path / layout.STATE_FILE,
            STATE_SHAPE_PROBLEM.format(expected=expected, found=found),
        )
    )


def test_an_empty_state_file_is_named(tmp_path: Path) -> None:
    (tmp_path / layout.STATE_FILE).write_text("")
    with pytest.raises(StateFileError) as info:
        make_store(tmp_path).load()
    assert str(info.value).endswith(
        STATE_SHAPE_PROBLEM.format(
            expected="a mapping with name, description and configs", found="nothing"
        )
    )


def test_unfit_configs_names_every_unfit_config_past_a_malformed_entry(
    tmp_path: Path,
) -> None:
    (tmp_path / layout.STATE_FILE).write_text(
        "configs:\n"
        "  broken: 3\n"
        "  no_params: {status: todo}\n"
        "  a: {params: {model: 1}}\n"
        "  b: {params: {model: m, extra: 2}}\n"
        "  fine: {params: {model: m}}\n"
    )
    unfit = make_store(tmp_path).unfit_configs()
    assert [error.config_name for error in unfit] == ["a", "b"]


@dataclass
class Labelled:
    label: str
    note: str = "café"

    def instantiate(self, context: object) -> object:
        return None


def test_a_state_the_direct_writer_leaves_to_pyyaml_keeps_order_and_text(
    tmp_path: Path,
) -> None:
    # A name past 128 characters cannot be a plain YAML key: PyYAML writes the file.
    # The keys keep their order, and the other text stays readable (not escaped).
    name = "n" * 200
    store = StateStore(tmp_path, codec_for(Labelled))
    store.save(ExperimentState("exp", None, {name: ConfigInfo(Labelled("x"))}))
    assert (tmp_path / layout.STATE_FILE).read_text() == (
        f"name: exp\ndescription: null\nconfigs:\n  ? {name}\n  : params:\n"
        "      label: x\n      note: café\n    status: todo\n"
        "    start_time: null\n    end_time: null\n    interruption_time: null\n"
    )


def test_save_and_record_create_an_output_dir_whose_parents_are_missing(
    tmp_path: Path,
) -> None:
    make_store(tmp_path / "runs" / "a").save(make_state())
    assert make_store(tmp_path / "runs" / "a").load() == make_state()
    store = make_store(tmp_path / "journals" / "b")
    store.record(ConfigUpdate("a", "done", T0, T1))
    assert read_journal(tmp_path / "journals" / "b" / layout.JOURNAL_FILE) == [
        ConfigUpdate("a", "done", T0, T1)
    ]


def test_times_of_another_zone_are_written_in_utc(tmp_path: Path) -> None:
    paris = timezone(timedelta(hours=2))
    state = make_state()
    state.configs["a"] = ConfigInfo(
        Config("small"), "done", T0.astimezone(paris), T1.astimezone(paris)
    )
    make_store(tmp_path).save(state)
    assert (tmp_path / layout.STATE_FILE).read_text() == STATE_TEXT


def test_invalid_yaml_is_named_with_its_line_and_problem(tmp_path: Path) -> None:
    (tmp_path / layout.STATE_FILE).write_text("name: exp\nconfigs: [unclosed\n")
    with pytest.raises(StateFileError) as info:
        make_store(tmp_path).load()
    assert info.value.line == 3
    assert str(info.value).endswith(
        INVALID_YAML_PROBLEM.format(problem="did not find expected ',' or ']'")
    )


def test_a_time_written_in_another_zone_is_read_in_utc(tmp_path: Path) -> None:
    (tmp_path / layout.STATE_FILE).write_text(
        STATE_TEXT.replace("'2024-05-01T12:00:00+00:00'", "'2024-05-01T14:00:00+02:00'")
    )
    assert make_store(tmp_path).load().configs["a"].start_time == T0


def test_a_failed_journal_write_keeps_the_entries_before_it_and_cuts_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(tmp_path)
    store.save(make_state())
    first, second = ConfigUpdate("a", "done", T0, T1), ConfigUpdate("b", "failed")
    store.record(first)
    store.record(second)
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        real_write(fd, data[:5])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        store.record(ConfigUpdate("b", "done", T0, T1))
    monkeypatch.undo()
    # The torn part was cut: the next entry, once there is room, starts its own line.
    third = ConfigUpdate("b", "done", T0, T1)
    store.record(third)
    store.close()
    assert read_journal(tmp_path / layout.JOURNAL_FILE) == [first, second, third]


@dataclass
class Loose:
    table: dict[Any, Any]

    def instantiate(self, context: object) -> object:
        return None


def test_hand_edited_int_key_reads_the_same_at_every_load(tmp_path: Path) -> None:
    # JSON would turn the key 1 into "1": an index of this YAML would hand the
    # second session another config than the first.
    path = tmp_path / layout.STATE_FILE
    path.write_text(
        "name: e\ndescription: null\nconfigs:\n"
        "  a:\n    params:\n      table: {1: x}\n    status: todo\n"
    )
    for _ in range(2):
        loaded = StateStore(tmp_path, codec_for(Loose)).load()
        assert loaded.configs["a"].params == Loose({1: "x"})


def test_fold_over_a_state_edited_since_a_load_read_it_is_refused(
    tmp_path: Path,
) -> None:
    make_store(tmp_path).save(make_state())
    store = make_store(tmp_path)
    store.load()
    store.record(ConfigUpdate("b", "done", T0, T1))
    state_file = tmp_path / layout.STATE_FILE
    edited = state_file.read_text().replace("a test", "edited by hand")
    state_file.write_text(edited)
    with pytest.raises(StateEditedError):
        store.fold()
    assert state_file.read_text() == edited


def test_a_state_file_of_the_size_limit_loads_and_one_byte_more_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_store(tmp_path).save(make_state())
    size = (tmp_path / layout.STATE_FILE).stat().st_size
    monkeypatch.setattr(state_store, "MAX_STATE_BYTES", size)
    assert make_store(tmp_path).load() == make_state()
    monkeypatch.setattr(state_store, "MAX_STATE_BYTES", size - 1)
    with pytest.raises(StateFileError, match=f"{size} bytes"):
        make_store(tmp_path).load()


def test_a_state_without_configs_loads_and_is_indexed(tmp_path: Path) -> None:
    # As a person may write a new experiment's state: `configs:` left empty.
    (tmp_path / layout.STATE_FILE).write_text("name: e\nconfigs:\n")
    loaded = make_store(tmp_path).load()
    assert loaded == ExperimentState("e", None, {})
    # Reading writes nothing; a save indexes it, and the index reads the same.
    assert not (tmp_path / layout.STATE_INDEX_FILE).exists()
    make_store(tmp_path).save(loaded)
    assert (tmp_path / layout.STATE_INDEX_FILE).exists()
    assert make_store(tmp_path).load() == ExperimentState("e", None, {})


def test_a_hand_edited_date_reads_the_same_at_every_load(tmp_path: Path) -> None:
    # JSON has no dates: such a state is read from its YAML each time.
    (tmp_path / layout.STATE_FILE).write_text(
        "name: e\ndescription: null\nconfigs:\n"
        "  a:\n    params:\n      table: {when: 2024-05-01}\n    status: todo\n"
    )
    for _ in range(2):
        loaded = StateStore(tmp_path, codec_for(Loose)).load()
        assert loaded.configs["a"].params == Loose({"when": date(2024, 5, 1)})


def test_journal_records_whose_params_still_fit_an_edited_state_are_applied(
    tmp_path: Path,
) -> None:
    make_store(tmp_path).save(make_state())
    ran_with = params_key({"model": "large", "temperature": 1.0})
    started = ConfigUpdate("b", "todo", T0, params=ran_with)
    ended = ConfigUpdate("b", "done", T0, T1, params=ran_with)
    journal = tmp_path / layout.JOURNAL_FILE
    journal.write_text(started.to_json() + "\n" + ended.to_json() + "\n")
    # A person edits something else than b's params.
    state_file = tmp_path / layout.STATE_FILE
    state_file.write_text(state_file.read_text().replace("a test", "edited"))

    store = make_store(tmp_path)
    state = store.load()

    assert state.configs["b"] == ConfigInfo(Config("large", 1.0), "done", T0, T1)
    assert store.set_aside == []


def test_a_record_set_aside_does_not_stop_the_records_after_it(tmp_path: Path) -> None:
    make_store(tmp_path).save(make_state())
    old_b = params_key({"model": "large", "temperature": 1.0})
    a_now = params_key({"model": "small", "temperature": 0.7})
    aside = ConfigUpdate("b", "done", T0, T1, params=old_b)
    later = ConfigUpdate("a", "failed", T0, T1, params=a_now)
    journal = tmp_path / layout.JOURNAL_FILE
    journal.write_text(aside.to_json() + "\n" + later.to_json() + "\n")
    state_file = tmp_path / layout.STATE_FILE
    state_file.write_text(state_file.read_text().replace("large", "huge"))

    store = make_store(tmp_path)
    state = store.load()

    assert store.set_aside == [aside]
    assert state.configs["a"].status == "failed"


def test_a_load_sees_what_another_process_recorded_between_two_of_its_own(
    tmp_path: Path,
) -> None:
    # As xdist workers record into one journal.
    make_store(tmp_path).save(make_state())
    mine, other = make_store(tmp_path), make_store(tmp_path)
    mine.load()
    other.record(ConfigUpdate("a", "failed", T0, T1))
    mine.record(ConfigUpdate("b", "done", T0, T1))
    state = mine.load()
    assert (state.configs["a"].status, state.configs["b"].status) == ("failed", "done")


def test_records_that_no_longer_fit_stay_aside_at_every_load_before_a_save(
    tmp_path: Path,
) -> None:
    # The first load indexes the edited YAML: the second reads that index, and must
    # still check the records against the edit.
    make_store(tmp_path).save(make_state())
    ran_with = params_key({"model": "large", "temperature": 1.0})
    edited = ConfigUpdate("b", "done", T0, T1, params=ran_with)
    (tmp_path / layout.JOURNAL_FILE).write_text(edited.to_json() + "\n")
    state_file = tmp_path / layout.STATE_FILE
    state_file.write_text(state_file.read_text().replace("large", "huge"))
    for _ in range(2):
        store = make_store(tmp_path)
        assert store.load().configs["b"] == ConfigInfo(Config("huge", 1.0))
        assert store.set_aside == [edited]


def test_aware_time_gives_a_naive_time_the_local_zone_and_keeps_an_aware_one() -> None:
    aware = datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert aware_time(aware) is aware
    naive = datetime(2024, 5, 1, 12)
    assert aware_time(naive) == naive.astimezone()
    assert aware_time(naive).tzinfo is not None


def test_a_state_the_block_writer_leaves_to_pyyaml_has_no_literal_blocks(
    tmp_path: Path,
) -> None:
    # A key too long for the direct writer: PyYAML writes the file, in the same
    # style for multi-line text (quoted, not a `|` block).
    store = StateStore(tmp_path, codec_for(Loose))
    state = ExperimentState("e", None, {"a": ConfigInfo(Loose({"k" * 200: "x\ny"}))})
    store.save(state)
    text = (tmp_path / layout.STATE_FILE).read_text()
    assert "|" not in text
    assert StateStore(tmp_path, codec_for(Loose)).load() == state
