"""Teardown judges a process ended when it has exited, even before its parent reaped it (a zombie)."""

import subprocess
import sys

import psutil

from releasegate.environment import ended


def test_an_exited_process_not_yet_reaped_has_ended():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    proc = psutil.Process(child.pid)
    while proc.status() != psutil.STATUS_ZOMBIE:  # exited, not reaped: its parent (this test) has not waited
        pass
    assert ended(proc, timeout_s=0) is True
    assert not psutil.pid_exists(child.pid) or psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE


def test_a_running_process_has_not_ended_at_the_timeout():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert ended(psutil.Process(child.pid), timeout_s=0.1) is False
    finally:
        child.kill()
        child.wait()
