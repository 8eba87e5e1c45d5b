"""The run-directory lock: a second live process is refused with the holder's PID; a killed
holder's lock does not block the next one. Real processes, not threads (flock is per open file)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from wgan.errors import ConfigError
from wgan.training.lock import LOCK_NAME, RunLock, RunLocked

HOLD = """
import sys, time
from wgan.errors import ConfigError
from wgan.training.lock import RunLock
lock = RunLock(sys.argv[1], "holder").acquire()
print("held", flush=True)
time.sleep(60)
"""


def _start_holder(run_dir):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


@pytest.mark.slow  # a subprocess
def test_second_process_is_refused_with_the_holders_pid(tmp_path):
    p = _start_holder(tmp_path)
    try:
        with pytest.raises(RunLocked, match=rf"in use by pid {p.pid} \(holder"):
            RunLock(tmp_path).acquire()
    finally:
        p.kill()
        p.wait()


@pytest.mark.slow  # subprocesses killed at random moments
def test_a_killed_holder_does_not_block_the_next(tmp_path):
    p = _start_holder(tmp_path)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert (tmp_path / LOCK_NAME).read_text().startswith(f"pid {p.pid}")  # the stale file is still there
    with RunLock(tmp_path, "next") as lock:
        assert lock.held
        assert (tmp_path / LOCK_NAME).read_text().startswith(f"pid {os.getpid()} (next")
    assert (tmp_path / LOCK_NAME).read_text() == ""  # released: nobody named


def test_released_lock_can_be_taken_again_in_process(tmp_path):
    a = RunLock(tmp_path).acquire()
    with pytest.raises(RunLocked):
        RunLock(tmp_path).acquire()  # a second open file in the same process is refused too
    a.release()
    RunLock(tmp_path).acquire().release()


@pytest.mark.slow  # a subprocess
def test_lock_error_is_one_line_config_error(tmp_path):
    p = _start_holder(tmp_path)
    try:
        t0 = time.perf_counter()
        with pytest.raises(ConfigError) as e:
            RunLock(tmp_path).acquire()
        assert "\n" not in str(e.value) and time.perf_counter() - t0 < 1.0  # refused at once, no waiting
    finally:
        p.kill()
        p.wait()
