"""The recorder where a session goes wrong around it: a disk that refuses a write, a
state edited or an output directory moved during the run, a fixture failing around a
config (SPEC §3, §5). In-process runs: each takes well under a second."""

from __future__ import annotations

import errno
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_delphyne import layout, state_store
from pytest_delphyne.files import atomic_write
from pytest_delphyne.journal import Journal
from pytest_delphyne.lock import LOCK_LOST_MESSAGE
from pytest_delphyne.recorder import STATE_SAVED_MESSAGE, STORAGE_ERROR_MESSAGE
from pytest_delphyne.shipped_files import NO_REPORT_MESSAGE

RED, PLAIN = "\x1b[31m", "\x1b[0m"

EXPERIMENT = """
import shutil
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run

HERE = Path(__file__).parent


def program(env, x):
    with (HERE / "calls.txt").open("a") as calls:
        calls.write(f"{x}\\n")
    env.spend(price=0.5, num_requests=1)
    if x == 2:
        AT_X2
    return Outcome(success=True, values=[x])


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(1), Config(2), Config(3)],
    config_naming=lambda config, uuid: f"x{config.x}",
)
"""


def write_experiment(pytester: pytest.Pytester, at_x2: str = "pass") -> None:
    pytester.makepyfile(exp=EXPERIMENT.replace("AT_X2", at_x2))


def calls(pytester: pytest.Pytester) -> list[int]:
    path = pytester.path / "calls.txt"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def yaml_statuses(out: Path) -> dict[str, str]:
    state = yaml.safe_load((out / layout.STATE_FILE).read_text())
    return {name: info["status"] for name, info in state["configs"].items()}


def refusal(out: Path, path: Path) -> str:
    """The storage error said when the disk refuses a write of `path`."""
    return STORAGE_ERROR_MESSAGE.format(
        output_dir=out,
        error=f"[Errno {errno.ENOSPC}] No space left on device: '{path}'",
        state_file=out / layout.STATE_FILE,
    )


@pytest.mark.parametrize("stays_full", [False, True], ids=["frees-up", "stays-full"])
def test_a_refused_journal_write_stops_the_session_and_keeps_what_was_recorded(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, stays_full: bool
) -> None:
    write_experiment(pytester)
    out = pytester.path / "out"
    append = Journal.append

    # The disk fills up once x1 is recorded: x2's entry is refused.
    def full_after_one(self: Journal, update: object) -> None:
        if calls(pytester) == [1]:
            append(self, update)  # type: ignore[arg-type]
            return
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    # When it stays full, the state file written at session end is refused too.
    def full(path: Path, *args: Any, **kwargs: Any) -> None:
        if calls(pytester) != [1, 2]:
            atomic_write(path, *args, **kwargs)
            return
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(Journal, "append", full_after_one)
    if stays_full:
        monkeypatch.setattr(state_store, "atomic_write", full)
    result = pytester.runpytest(
        "--delphyne-exp=exp.py", "-p", "no:randomly", "--color=yes"
    )
    monkeypatch.setattr(Journal, "append", append)
    monkeypatch.setattr(state_store, "atomic_write", atomic_write)
    output = result.stdout.str()

    assert "INTERNALERROR" not in output, output
    # A red line of its own in the delphyne section (pytest's own "Interrupted" line
    # quotes the first refusal as well), the last one only, and said once; the
    # session stopped before x3.
    journal_refused = refusal(out, out / layout.JOURNAL_FILE)
    said = refusal(out, out / layout.STATE_FILE) if stays_full else journal_refused
    lines = result.stdout.lines
    assert lines.count(f"{RED}{said}{PLAIN}") == 1, output
    assert lines.index(f"{RED}{said}{PLAIN}") > lines.index(
        next(line for line in lines if " delphyne " in line)
    )
    assert (f"{RED}{journal_refused}{PLAIN}" in lines) is not stays_full, output
    assert f"! Interrupted: {journal_refused} !" in output, output
    assert calls(pytester) == [1, 2]
    state_path = (out / layout.STATE_FILE).relative_to(pytester.path)
    assert STATE_SAVED_MESSAGE.format(path=state_path) in output, output
    # x2 paid and ran, but its result was not recorded: todo, to run again; x1's
    # entry, when the state could not be written, is in the journal.
    first = {"x1": "done", "x2": "todo", "x3": "todo"}
    assert yaml_statuses(out) == (first | {"x1": "todo"} if stays_full else first)
    # Room made: --lf runs x3 only; x2's result, written before the refusal, is
    # recorded from its file rather than paid for again.
    (pytester.path / "calls.txt").unlink()
    resumed = pytester.runpytest("--delphyne-exp=exp.py", "--lf", "-p", "no:randomly")
    resumed.assert_outcomes(passed=1, deselected=2)
    assert calls(pytester) == [3]
    assert yaml_statuses(out) == {"x1": "done", "x2": "done", "x3": "done"}


def test_a_state_edited_during_the_run_is_left_as_edited_and_nothing_is_lost(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(
        pytester,
        'state = HERE / "out" / "experiment.yaml"\n'
        '        state.write_text(state.read_text() + "# a note\\n")',
    )
    out = pytester.path / "out"
    result = pytester.runpytest("--delphyne-exp=exp.py")
    result.assert_outcomes(passed=3)
    output = result.stdout.str()
    state_file = out / layout.STATE_FILE
    assert f"delphyne: {state_file} was edited during the run" in output, output
    assert (state_file).read_text().endswith("# a note\n")
    # Nothing was folded over the edit: no summary is written from it either.
    assert not (out / layout.SUMMARY_FILE).exists()
    # The next run applies the journal over the edit: every config done, none rerun.
    again = pytester.runpytest("--delphyne-exp=exp.py")
    again.assert_outcomes(skipped=3)
    assert calls(pytester) == [1, 2, 3]
    assert yaml_statuses(out) == {"x1": "done", "x2": "done", "x3": "done"}


def test_an_output_directory_moved_during_the_run_is_not_written_over(
    pytester: pytest.Pytester,
) -> None:
    # A copy put in its place: the results after it land in the copy.
    write_experiment(
        pytester,
        '(HERE / "out").rename(HERE / "moved")\n'
        '        shutil.copytree(HERE / "moved", HERE / "out")',
    )
    out = pytester.path / "out"
    result = pytester.runpytest("--delphyne-exp=exp.py")
    output = result.stdout.str()
    assert "INTERNALERROR" not in output, output
    assert f"delphyne: {LOCK_LOST_MESSAGE.format(output_dir=out)}" in output, output


def test_a_fixture_failing_at_setup_fails_its_config_and_says_why(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester)
    pytester.makeconftest(
        textwrap.dedent(
            """
            def pytest_runtest_setup(item):
                if item.name.endswith("[x2]"):
                    raise RuntimeError("no GPU for x2")
            """
        )
    )
    out = pytester.path / "out"
    result = pytester.runpytest("--delphyne-exp=exp.py")
    result.assert_outcomes(passed=2, errors=1)
    assert yaml_statuses(out) == {"x1": "done", "x2": "failed", "x3": "done"}
    exception = (layout.config_dir(out, "x2") / layout.EXCEPTION_FILE).read_text()
    assert exception.startswith(
        NO_REPORT_MESSAGE.format(name="x2", reason="an error during setup", details="")
    ), exception
    assert "no GPU for x2" in exception
    assert calls(pytester) == [1, 3]


FAILING_SETUP = """
def pytest_runtest_setup(item):
    if item.nodeid == "FAILING":
        raise RuntimeError("no GPU for " + item.nodeid)
"""


def test_a_setup_error_after_a_config_done_earlier_fails_its_config(
    pytester: pytest.Pytester,
) -> None:
    # x1, done by an earlier session, is not run again: the configs after it are.
    write_experiment(pytester)
    out = pytester.path / "out"
    pytester.runpytest("--delphyne-exp=exp.py", "-k", "x1").assert_outcomes(passed=1)
    pytester.makeconftest(FAILING_SETUP.replace("FAILING", "exp.py::experiment[x2]"))
    result = pytester.runpytest("--delphyne-exp=exp.py")
    result.assert_outcomes(passed=1, skipped=1, errors=1)
    assert yaml_statuses(out) == {"x1": "done", "x2": "failed", "x3": "done"}


def test_a_setup_error_fails_the_config_of_its_own_file_where_names_repeat(
    pytester: pytest.Pytester,
) -> None:
    # Two experiment files with the same item names: a report without a result is
    # the config of the file its node id names.
    for name in ("a", "b"):
        source = EXPERIMENT.replace("AT_X2", "pass")
        pytester.makepyfile(
            **{name: source.replace('output_dir="out"', f'output_dir="out_{name}"')}
        )
    pytester.makeconftest(FAILING_SETUP.replace("FAILING", "b.py::experiment[x2]"))
    result = pytester.runpytest("--delphyne-exp=a.py", "--delphyne-exp=b.py")
    result.assert_outcomes(passed=5, errors=1)
    done = {"x1": "done", "x2": "done", "x3": "done"}
    assert yaml_statuses(pytester.path / "out_a") == done
    assert yaml_statuses(pytester.path / "out_b") == {**done, "x2": "failed"}
    exception = layout.config_dir(pytester.path / "out_b", "x2") / layout.EXCEPTION_FILE
    assert "no GPU for b.py::experiment[x2]" in exception.read_text()


def test_a_fixture_failing_at_teardown_leaves_its_done_config_done(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester)
    pytester.makeconftest(
        textwrap.dedent(
            """
            import pytest

            def broke():
                raise RuntimeError("cleanup of x2 broke")

            @pytest.hookimpl(trylast=True)
            def pytest_runtest_setup(item):
                if item.name.endswith("[x2]"):
                    item.addfinalizer(broke)
            """
        )
    )
    out = pytester.path / "out"
    result = pytester.runpytest("--delphyne-exp=exp.py")
    result.assert_outcomes(passed=3, errors=1)
    # The result was recorded: what the config paid for is not thrown away.
    assert yaml_statuses(out) == {"x1": "done", "x2": "done", "x3": "done"}
    assert not (layout.config_dir(out, "x2") / layout.EXCEPTION_FILE).exists()
    assert "state saved" not in result.stdout.str()
    assert (out / layout.SUMMARY_FILE).exists()


def test_a_refused_write_names_the_output_directory_it_was_for(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_experiment(pytester)
    pytester.makepyfile(
        other=EXPERIMENT.replace("AT_X2", "pass").replace('"out"', '"other"')
    )
    append = Journal.append

    # Only the disk of `other/` is full.
    def other_full(self: Journal, update: object) -> None:
        if self.path.parent.name != "other":
            append(self, update)  # type: ignore[arg-type]
            return
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(Journal, "append", other_full)
    result = pytester.runpytest(
        "--delphyne-exp=exp.py", "--delphyne-exp=other.py", "-p", "no:randomly"
    )
    other = pytester.path / "other"
    assert refusal(other, other / layout.JOURNAL_FILE) in result.stdout.lines, (
        result.stdout.str()
    )
    assert yaml_statuses(pytester.path / "out") == {f"x{x}": "done" for x in (1, 2, 3)}


def test_a_session_that_changed_nothing_leaves_the_summary_as_it_is(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester)
    summary = pytester.path / "out" / layout.SUMMARY_FILE
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(passed=3)
    # One the reference launcher wrote, say, with a column of its own.
    summary.write_text(summary.read_text() + "# written elsewhere\n")
    kept = summary.read_text()
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(skipped=3)
    assert summary.read_text() == kept
    # Without one, a session with every config done writes it, though it ran none.
    summary.unlink()
    again = pytester.runpytest("--delphyne-exp=exp.py")
    again.assert_outcomes(skipped=3)
    assert summary.read_text() != kept
    assert "x1" in summary.read_text()
    assert "  summary: out/results_summary.csv" in again.stdout.lines
    # A session that changed the state writes it again: x2, set back to todo by
    # hand, is recorded done again from its result file.
    summary.write_text(summary.read_text() + "# written elsewhere\n")
    state_file = pytester.path / "out" / layout.STATE_FILE
    state = yaml.safe_load(state_file.read_text())
    state["configs"]["x2"]["status"] = "todo"
    state_file.write_text(yaml.safe_dump(state, sort_keys=False))
    pytester.runpytest("--delphyne-exp=exp.py").assert_outcomes(skipped=3)
    assert yaml_statuses(pytester.path / "out")["x2"] == "done"
    assert "# written elsewhere" not in summary.read_text()


# Who reads the reports: a conftest's hook (its plugin registered before the
# recorder), or a plugin registered at configure after it, as pytest-reportlog and
# junitxml register theirs; a plain hook of the latter runs before the recorder's.
REPORT_READERS = {
    "conftest-hook": """
        @pytest.hookimpl(trylast=True)
        def pytest_runtest_logreport(report):
            SEEN.append((report.when, [name for name, _ in report.user_properties]))
    """,
    "plugin-registered-after": """
        class ReportReader:
            def pytest_runtest_logreport(self, report):
                SEEN.append((report.when, [name for name, _ in report.user_properties]))

        @pytest.hookimpl(trylast=True)
        def pytest_configure(config):
            config.pluginmanager.register(ReportReader(), "report-reader")
    """,
}


@pytest.mark.parametrize("reader", sorted(REPORT_READERS))
def test_the_result_payload_leaves_the_report_before_other_plugins_read_it(
    pytester: pytest.Pytester, reader: str
) -> None:
    # A report writer such as pytest-reportlog writes every report's properties:
    # the payload (a whole result, files included) is the recorder's alone.
    write_experiment(pytester)
    pytester.makeconftest(
        "import pytest\n\nSEEN = []\n"
        + textwrap.dedent(REPORT_READERS[reader])
        + textwrap.dedent(
            """
            def pytest_terminal_summary(terminalreporter):
                for when, names in SEEN:
                    terminalreporter.write_line(f"{when} properties: {names}")
            """
        )
    )
    result = pytester.runpytest("--delphyne-exp=exp.py")
    result.assert_outcomes(passed=3)
    seen = [line for line in result.stdout.lines if " properties: " in line]
    assert len(seen) == 9, result.stdout.str()
    assert [line for line in seen if "delphyne" in line] == [], result.stdout.str()


def test_the_spend_cap_stops_the_session_once_reached_exactly(
    pytester: pytest.Pytester,
) -> None:
    write_experiment(pytester)
    result = pytester.runpytest("--delphyne-exp=exp.py", "--delphyne-max-price=1.0")
    result.assert_outcomes(passed=2)
    assert calls(pytester) == [1, 2]
    assert "delphyne: session spend cap of 1.0 reached" in result.stdout.str()
    assert yaml_statuses(pytester.path / "out") == {
        "x1": "done",
        "x2": "done",
        "x3": "todo",
    }
