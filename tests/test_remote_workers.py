"""Remote workers: pytest-xdist's `--tx ssh=...` and `--tx socket=HOST:PORT` workers
are how a run spans several machines (README, "Several machines"). The ssh test starts
its own `sshd` on a free port of 127.0.0.1, with keys of its own, and skips, saying
why, where it cannot; the socket test starts execnet's socket server, as a cluster's
scheduler would on each node.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pytest_delphyne import layout

SSHD = Path("/usr/sbin/sshd")
PRIVILEGE_SEPARATION_DIR = Path("/run/sshd")

EXPERIMENT = """
import os
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run


def program(env, x):
    time.sleep(0.2)
    value = env.compute(pow, x, 2)
    return Outcome(True, [value, os.getcwd(), os.getpid()])


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(x) for x in range(6)],
    config_naming=lambda config, uuid: f"x{config.x}",
)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _why_no_sshd() -> str | None:
    if not SSHD.exists():
        return f"no {SSHD} (apt-get install openssh-server)"
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "no ssh client (apt-get install openssh-client)"
    if not PRIVILEGE_SEPARATION_DIR.is_dir():
        try:
            PRIVILEGE_SEPARATION_DIR.mkdir(parents=True)
        except OSError as error:
            return f"sshd needs {PRIVILEGE_SEPARATION_DIR}: {error.strerror}"
    return None


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        timeout=30,
    )


@pytest.fixture
def ssh_host(tmp_path: Path) -> Iterator[str]:
    """An ssh host alias to this machine, through an sshd started for the test: the
    `ssh_config=` file xdist's `--tx ssh=HOST//ssh_config=FILE` takes."""
    reason = _why_no_sshd()
    if reason is not None:
        pytest.skip(reason)
    keys = tmp_path / "ssh"
    keys.mkdir(mode=0o700)
    _keygen(keys / "host_key")
    _keygen(keys / "client_key")
    shutil.copy(keys / "client_key.pub", keys / "authorized_keys")
    port = _free_port()
    user = (
        os.environ.get("USER")
        or subprocess.run(
            ["id", "-un"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    (keys / "sshd_config").write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {keys / 'host_key'}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\n"
        f"PidFile {keys / 'sshd.pid'}\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\n"
        # The test's keys live under pytest's temporary directory.
        "StrictModes no\n"
        "UsePAM no\n"
    )
    (keys / "ssh_config").write_text(
        "Host delphyne-test\n"
        "  HostName 127.0.0.1\n"
        f"  Port {port}\n"
        f"  User {user}\n"
        f"  IdentityFile {keys / 'client_key'}\n"
        "  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n"
        "  UserKnownHostsFile /dev/null\n"
        "  LogLevel ERROR\n"
    )
    sshd = subprocess.Popen(
        [str(SSHD), "-D", "-f", str(keys / "sshd_config"), "-E", str(keys / "log")]
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            probe = subprocess.run(
                ["ssh", "-F", str(keys / "ssh_config"), "delphyne-test", "true"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if probe.returncode == 0:
                break
            if sshd.poll() is not None or time.monotonic() > deadline:
                log = (keys / "log").read_text() if (keys / "log").exists() else ""
                pytest.skip(f"sshd on localhost did not accept the test's key: {log}")
            time.sleep(0.2)
        yield f"delphyne-test//ssh_config={keys / 'ssh_config'}"
    finally:
        sshd.terminate()
        sshd.wait(timeout=30)


def run_on_remote_worker(pytester: pytest.Pytester, tx: str) -> Path:
    """Run the experiment on one remote worker; the worker's checkout."""
    pytester.makepyfile(exp=EXPERIMENT)
    # The other machine's checkout of the project: the same file, elsewhere.
    checkout = pytester.path / "checkout"
    checkout.mkdir()
    shutil.copy(pytester.path / "exp.py", checkout / "exp.py")
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py",
        "--dist=load",
        "--tx",
        f"{tx}//chdir={checkout}",
        "--delphyne-concurrency=3",
    )
    result.assert_outcomes(passed=6)
    return checkout


def check_run_by_one_worker_in(checkout: Path, out: Path) -> None:
    state = yaml.safe_load((out / layout.STATE_FILE).read_text())
    assert {info["status"] for info in state["configs"].values()} == {"done"}
    pids = set()
    for x in range(6):
        recorded = yaml.safe_load(layout.result_file_path(out, f"x{x}").read_text())
        value, cwd, pid = recorded["outcome"]["result"]["values"]
        assert value == x * x
        # Run by the worker that ssh started, in its own checkout.
        assert cwd == str(checkout)
        pids.add(pid)
    assert len(pids) == 1
    assert not (checkout / "out").exists()
    assert (out / layout.SUMMARY_FILE).exists()


def test_ssh_worker_runs_configs_from_its_own_checkout(
    pytester: pytest.Pytester, ssh_host: str
) -> None:
    checkout = run_on_remote_worker(
        pytester, f"ssh={ssh_host}//python={sys.executable}"
    )
    check_run_by_one_worker_in(checkout, pytester.path / "out")


def test_socket_worker_started_apart_runs_configs_from_its_own_checkout(
    pytester: pytest.Pytester,
) -> None:
    port = _free_port()
    # What a cluster's scheduler starts on each node (README's recipe).
    server = subprocess.Popen(
        [sys.executable, "-m", "execnet.script.socketserver", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, "the socket server did not start"
                assert time.monotonic() < deadline, "the socket server never listened"
                time.sleep(0.1)
        checkout = run_on_remote_worker(pytester, f"socket=127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    check_run_by_one_worker_in(checkout, pytester.path / "out")
