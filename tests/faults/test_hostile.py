"""Hostile and careless input (SPEC §3, §8): planted symlinks, secrets in errors, text
that is not text, YAML bombs, values the state cannot store, two experiments on one
directory, a disk turned read-only. Each case runs pytest in a real process and
checks what reached the disk and the terminal: nothing written outside the output
directory, no secret in any file, one clear line and no INTERNALERROR."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml
from loopback import serving

from faults.harness import experiment_source, paid, statuses
from faults.harness import run as harness_run
from pytest_delphyne import layout
from pytest_delphyne.files import PLANTED_SYMLINK_MESSAGE

CONFIGS = 4
OUTSIDE = "hostile: files written outside the output directory"
SECRETS = "hostile: secrets found in files and terminal output"

HOSTILE = """
from __future__ import annotations

import datetime
from dataclasses import dataclass

from pytest_delphyne import Experiment, Outcome, Run


def program(env, label, x):
    return Outcome(success=True, values=[RETURNED])


@dataclass
class Config:
    x: int
    label: str = "plain"
    FIELDS

    def instantiate(self, context):
        return Run(program=program, args={"label": self.label, "x": self.x})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(x, LABEL) for x in range(4)],
    config_naming=lambda config, uuid: NAMING,
)
"""


def hostile_source(
    *,
    label: str = "'plain'",
    naming: str = 'f"x{config.x}"',
    returned: str = "x",
    fields: str = "",
) -> str:
    return (
        HOSTILE.replace("RETURNED", returned)
        .replace("LABEL", label)
        .replace("NAMING", naming)
        .replace("FIELDS", fields)
    )


_runs: list[subprocess.CompletedProcess[str]] = []


def run(
    directory: Path, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    result = harness_run(directory, *args, timeout=timeout)
    _runs.append(result)
    return result


@pytest.fixture(autouse=True)
def tally(figures: Counter[str]) -> Iterator[None]:
    """The README's figures: every pytest run of this section, and the
    INTERNALERRORs among them."""
    _runs.clear()
    yield
    figures["hostile: cases tried"] += 1
    figures["hostile: pytest runs"] += len(_runs)
    figures["hostile: INTERNALERRORs"] += sum(
        "INTERNALERROR" in output_of(result) for result in _runs
    )


def changed_files(before: dict[Path, bytes], after: dict[Path, bytes]) -> int:
    return len(set(before.items()) ^ set(after.items()))


def secrets_found(secrets: tuple[str, ...], text: str, directory: Path) -> int:
    files = files_below(directory).values()
    return sum(
        (secret in text) + sum(secret.encode() in data for data in files)
        for secret in secrets
    )


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def assert_one_clear_line(
    result: subprocess.CompletedProcess[str], *expected: str
) -> str:
    """A usage error (exit 4) whose first line holds every `expected` text."""
    text = output_of(result)
    assert "INTERNALERROR" not in text, text
    assert "Traceback" not in text, text
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, text
    first = result.stderr.strip().splitlines()[0]
    for part in expected:
        assert part in first, (part, first)
    return first


def files_below(directory: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in directory.rglob("*") if path.is_file()}


# --- Symlinks: nothing is written outside the output directory ---------------------


@pytest.fixture
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory outside the experiment, holding a file a link may point at."""
    directory = tmp_path_factory.mktemp("elsewhere")
    (directory / "precious.txt").write_text("the user's own file\n")
    return directory


@pytest.mark.parametrize(
    "workers",
    [
        pytest.param([], id="no-workers"),
        pytest.param(["-n", "2"], id="n2", marks=pytest.mark.slow),
    ],
)
def test_symlinked_config_directory_is_refused_and_its_target_untouched(
    pytester: pytest.Pytester,
    elsewhere: Path,
    workers: list[str],
    figures: Counter[str],
) -> None:
    pytester.makepyfile(exp=experiment_source(CONFIGS))
    link = layout.config_dir(pytester.path / "out", "x1")
    link.parent.mkdir(parents=True)
    link.symlink_to(elsewhere, target_is_directory=True)
    before = files_below(elsewhere)
    result = run(pytester.path, *workers)
    text = output_of(result)
    assert "INTERNALERROR" not in text, text
    assert "1 failed, 3 passed" in result.stdout, text
    assert PLANTED_SYMLINK_MESSAGE.format(path=link) in text
    figures[OUTSIDE] += changed_files(before, files_below(elsewhere))
    assert files_below(elsewhere) == before
    assert paid(pytester.path)["x1"] == 0
    assert statuses(pytester.path / "out")["x1"] == "failed"


@pytest.mark.parametrize("name", [layout.CACHE_FILE, layout.RESULT_FILE])
def test_symlinked_file_in_a_config_directory_is_refused(
    pytester: pytest.Pytester, elsewhere: Path, name: str, figures: Counter[str]
) -> None:
    pytester.makepyfile(exp=experiment_source(CONFIGS))
    first = run(pytester.path)
    assert first.returncode == 0, output_of(first)
    # The next run of x1 (--lf after a hand edit) would rewrite its files.
    out = pytester.path / "out"
    link = layout.config_dir(out, "x1") / name
    link.unlink()
    link.symlink_to(elsewhere / "precious.txt")
    state = out / layout.STATE_FILE
    data = yaml.safe_load(state.read_text())
    data["configs"]["x1"]["status"] = "failed"
    state.write_text(yaml.safe_dump(data))
    before = files_below(elsewhere)
    result = run(pytester.path, "--lf")
    text = output_of(result)
    assert "INTERNALERROR" not in text, text
    assert str(link) in text, text
    figures[OUTSIDE] += changed_files(before, files_below(elsewhere))
    assert files_below(elsewhere) == before


def test_symlinked_journal_is_refused_before_anything_runs(
    pytester: pytest.Pytester, elsewhere: Path, figures: Counter[str]
) -> None:
    pytester.makepyfile(exp=experiment_source(CONFIGS))
    out = pytester.path / "out"
    out.mkdir()
    journal = out / layout.JOURNAL_FILE
    journal.symlink_to(elsewhere / "journal")
    result = run(pytester.path)
    assert_one_clear_line(result, str(journal))
    figures[OUTSIDE] += (elsewhere / "journal").exists()
    assert not (elsewhere / "journal").exists()
    assert sum(paid(pytester.path).values()) == 0


# --- Secrets: no key or auth header value reaches a file or the terminal -----------

SECRET_HEADER = "sk-hostile-header-0123456789"
SECRET_KEY = "sk-hostile-key-9876543210"

CHATTY = """
from __future__ import annotations

import os
from dataclasses import dataclass

from pytest_delphyne import Experiment, Outcome, Run
from pytest_delphyne.models import OpenAIChatModel, ModelPrice


def program(env, url):
    model = OpenAIChatModel(
        "test-model",
        base_url=url,
        api_key=os.environ["HOSTILE_KEY"],
        prices={"test-model": ModelPrice(1.0, 1.0, 1.0)},
        max_retries=0,
    )
    answer = model.chat(
        env,
        [{"role": "user", "content": "2+2?"}],
        extra_headers={"X-Api-Key": os.environ["HOSTILE_HEADER"]},
    )
    return Outcome(success=True, values=[answer.text])


@dataclass
class Config:
    url: str

    def instantiate(self, context):
        return Run(program=program, args={"url": self.url}, export_log=True)


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config("URL")],
    config_naming=lambda config, uuid: "chat",
)
"""


@pytest.fixture
def echoing_server() -> Iterator[str]:
    """A chat endpoint that refuses every request with a 400 whose message echoes
    the request's headers, as careless proxies do."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            echoed = "; ".join(f"{k}: {v}" for k, v in self.headers.items())
            data = json.dumps(
                {"error": {"message": f"bad request with headers {echoed}"}}
            ).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        yield url


@pytest.mark.parametrize(
    "workers",
    [
        pytest.param([], id="no-workers"),
        pytest.param(["-n", "1"], id="n1", marks=pytest.mark.slow),
    ],
)
def test_secrets_of_a_failing_chat_reach_no_file_and_no_terminal(
    pytester: pytest.Pytester,
    echoing_server: str,
    workers: list[str],
    monkeypatch: pytest.MonkeyPatch,
    figures: Counter[str],
) -> None:
    pytest.importorskip("openai")
    monkeypatch.setenv("HOSTILE_KEY", SECRET_KEY)
    monkeypatch.setenv("HOSTILE_HEADER", SECRET_HEADER)
    pytester.makepyfile(exp=CHATTY.replace("URL", echoing_server))
    result = run(
        pytester.path, "--junitxml=junit.xml", "--tb=long", "-rA", "-vv", *workers
    )
    text = output_of(result)
    assert "INTERNALERROR" not in text, text
    assert "1 failed" in result.stdout, text
    exception = layout.exception_file_path(pytester.path / "out", "chat").read_text()
    assert "bad request with headers" in exception  # the error is kept, redacted
    assert (pytester.path / "junit.xml").exists()
    figures[SECRETS] += secrets_found((SECRET_HEADER, SECRET_KEY), text, pytester.path)
    for secret in (SECRET_HEADER, SECRET_KEY):
        assert secret not in text, secret
        for path, data in files_below(pytester.path).items():
            assert secret.encode() not in data, (path, secret)


LEAKY = """
from __future__ import annotations

import os
from dataclasses import dataclass

from pytest_delphyne import Experiment, Run


def program(env):
    token = os.environ["HOSTILE_HEADER"]
    env.log(f"calling with Authorization: Bearer {token}")
    raise ValueError(f"the server refused the key {os.environ['HOSTILE_KEY']}")


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=program, args={}, export_log=True)


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(0)],
    config_naming=lambda config, uuid: "leaky",
)
"""


def test_credentials_a_program_logs_or_raises_reach_no_file_and_no_terminal(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, figures: Counter[str]
) -> None:
    monkeypatch.setenv("HOSTILE_KEY", SECRET_KEY)
    monkeypatch.setenv("HOSTILE_HEADER", SECRET_HEADER)
    pytester.makepyfile(exp=LEAKY)
    result = run(pytester.path, "--junitxml=junit.xml", "-rA")
    text = output_of(result)
    assert "1 failed" in result.stdout, text
    out = pytester.path / "out"
    log = (layout.config_dir(out, "leaky") / layout.LOG_FILE).read_text()
    assert "calling with Authorization: Bearer [redacted]" in log
    exception = layout.exception_file_path(out, "leaky").read_text()
    assert "ValueError: the server refused the key [redacted]" in exception
    assert "ValueError: the server refused the key [redacted]" in text
    figures[SECRETS] += secrets_found((SECRET_HEADER, SECRET_KEY), text, pytester.path)
    for secret in (SECRET_HEADER, SECRET_KEY):
        assert secret not in text, secret
        for path, data in files_below(pytester.path).items():
            assert secret.encode() not in data, (path, secret)


# --- Text that is not text --------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "culprit"),
    [
        pytest.param(
            hostile_source(naming='"x" + str(config.x) + "\\udc80"'),
            "'x0\\udc80'",
            id="name",
        ),
        pytest.param(hostile_source(label='"a\\udc80"'), "label", id="param"),
    ],
)
def test_text_that_cannot_be_encoded_is_refused_before_anything_is_written(
    pytester: pytest.Pytester, source: str, culprit: str
) -> None:
    pytester.makepyfile(exp=source)
    result = run(pytester.path)
    assert_one_clear_line(result, culprit)
    assert not (pytester.path / "out" / layout.STATE_FILE).exists()
    # Once the code is fixed, the next run starts from a readable directory.
    pytester.makepyfile(exp=hostile_source())
    fixed = run(pytester.path)
    assert fixed.returncode == 0, output_of(fixed)
    assert set(statuses(pytester.path / "out").values()) == {"done"}


def test_returned_text_that_cannot_be_encoded_fails_only_its_config(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=hostile_source(returned='"v\\udc80" if x == 2 else x'))
    result = run(pytester.path)
    text = output_of(result)
    assert "INTERNALERROR" not in text, text
    assert "1 failed, 3 passed" in result.stdout, text
    out = pytester.path / "out"
    assert statuses(out) == {"x0": "done", "x1": "done", "x2": "failed", "x3": "done"}
    assert "values[0]" in layout.exception_file_path(out, "x2").read_text()
    for name in ("x0", "x1", "x3"):
        yaml.safe_load(layout.result_file_path(out, name).read_text())
    assert not layout.result_file_path(out, "x2").exists()


# --- YAML from a person ---------------------------------------------------------------


def yaml_bomb(levels: int = 7, width: int = 9) -> str:
    lines = ["a0: &a0 [lol]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_yaml_bomb_in_the_state_is_refused_quickly_naming_the_file(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=experiment_source(CONFIGS))
    assert run(pytester.path).returncode == 0
    state = pytester.path / "out" / layout.STATE_FILE
    state.write_text(yaml_bomb() + state.read_text())
    before = state.read_bytes()
    started = time.monotonic()
    result = run(pytester.path, timeout=60)
    assert time.monotonic() - started < 30
    assert_one_clear_line(result, str(state), "alias")
    assert state.read_bytes() == before


# --- Values the state cannot store, option values --------------------------------


def test_config_field_the_state_cannot_store_is_refused_naming_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        exp=hostile_source(
            fields="when: datetime.datetime = datetime.datetime(2024, 1, 1)"
        )
    )
    result = run(pytester.path)
    assert_one_clear_line(result, "when")
    assert not (pytester.path / "out" / layout.STATE_FILE).exists()


@pytest.mark.parametrize("price", ["nan", "inf", "-1"])
def test_spend_cap_that_is_not_a_finite_price_is_refused(
    pytester: pytest.Pytester, price: str
) -> None:
    pytester.makepyfile(exp=experiment_source(CONFIGS))
    result = run(pytester.path, f"--delphyne-max-price={price}")
    assert_one_clear_line(result, "--delphyne-max-price", price)
    assert sum(paid(pytester.path).values()) == 0
    assert not (pytester.path / "out").exists()


# --- Two experiments of one session on one directory ---------------------------------


@pytest.mark.parametrize("same_class", [True, False], ids=["same-class", "other-class"])
def test_two_experiments_on_one_output_directory_are_refused_before_writing(
    pytester: pytest.Pytester, same_class: bool
) -> None:
    pytester.makepyfile(
        a=experiment_source(CONFIGS),
        b=experiment_source(CONFIGS) if same_class else hostile_source(),
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--delphyne-exp=a.py", "--delphyne-exp=b.py"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    _runs.append(result)
    assert_one_clear_line(result, "a.py", "b.py", str(pytester.path / "out"))
    assert not (pytester.path / "out").exists()
    assert sum(paid(pytester.path).values()) == 0


# --- A disk turned read-only mid-run ------------------------------------------------

READ_ONLY_AFTER_FIRST = """
import subprocess

_real_program = program


def program(env, x, delay):
    value = _real_program(env, x, delay)
    if x == 0:
        # Files already open stay writable; every new open or unlink fails.
        out = str(HERE / "out")
        subprocess.run(["mount", "--bind", out, out], check=True)
        subprocess.run(["mount", "-o", "remount,ro,bind", out], check=True)
    return value
"""


def can_bind_mount(directory: Path) -> bool:
    directory.mkdir()
    tried = subprocess.run(
        ["mount", "--bind", str(directory), str(directory)], capture_output=True
    )
    subprocess.run(["umount", "-l", str(directory)], capture_output=True)
    directory.rmdir()
    return tried.returncode == 0


def test_output_directory_turned_read_only_ends_with_no_traceback(
    pytester: pytest.Pytester,
) -> None:
    if not can_bind_mount(pytester.path / "probe"):
        pytest.skip("cannot bind-mount a directory read-only (needs root)")
    out = pytester.path / "out"
    source = experiment_source(CONFIGS).replace(
        "\n@dataclass", READ_ONLY_AFTER_FIRST + "\n\n@dataclass", 1
    )
    pytester.makepyfile(exp=source)
    try:
        result = run(pytester.path)
    finally:
        subprocess.run(["umount", "-l", str(out)], check=False)
    text = output_of(result)
    assert "INTERNALERROR" not in text, text
    assert result.stderr == "", text
    assert result.returncode == pytest.ExitCode.INTERRUPTED, text
    assert "the session stopped" in result.stdout, text
    assert paid(pytester.path) == Counter({"x0": 1})
