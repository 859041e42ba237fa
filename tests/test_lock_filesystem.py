from __future__ import annotations

import errno
import fcntl
from pathlib import Path

import pytest

from pytest_delphyne import layout
from pytest_delphyne.lock import RunLock


def test_run_lock_fails_where_the_filesystem_has_no_flock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A marker file in place of flock would outlive a killed holder and lock the
    # experiment for good: the lock must fail, not fall back to one.
    def flock_not_implemented(fd: int, operation: int) -> None:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", flock_not_implemented)
    lock = RunLock(tmp_path)
    with pytest.raises(OSError, match="Function not implemented") as raised:
        lock.acquire()
    assert raised.value.errno == errno.ENOSYS
    assert not lock.is_held
    assert not (tmp_path / layout.LOCK_HOLDER_FILE).exists()
