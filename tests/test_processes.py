"""initlab.processes.become_worker: a forked worker never outlives what started it, leaves
Ctrl-C to its parent and takes SIGTERM's default (run --workers, sweeps, figure processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from initlab import processes

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")

# a parent that forks a worker (which calls become_worker and prints its pid), then waits
PARENT = textwrap.dedent("""
    import os, signal, sys, time
    from initlab.processes import become_worker
    signal.signal(signal.SIGTERM, lambda *a: print("parent handler ran", flush=True))
    driver = int(sys.argv[1]) if len(sys.argv) > 1 else None
    pid = os.fork()
    if pid == 0:
        become_worker(driver)
        print(os.getpid(), flush=True)
        signal.raise_signal(signal.SIGINT)  # ignored
        time.sleep(60)
        os._exit(0)
    time.sleep(60)
""")


def _gone(pid: int, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not processes.pid_alive(pid):
            return True
        with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for its reaper counts as gone
            if f.read().split(")")[-1].split()[0] == "Z":
                return True
        time.sleep(0.05)
    return False


def _start(*args: str) -> tuple[subprocess.Popen, int]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, *args], stdout=subprocess.PIPE,
                              text=True)
    assert parent.stdout is not None
    return parent, int(parent.stdout.readline())


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_worker_dies_when_its_parent_is_killed():
    parent, worker = _start()
    time.sleep(0.2)
    assert processes.pid_alive(worker)  # Ctrl-C did not end it
    parent.kill()
    parent.wait()
    assert _gone(worker)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_worker_ends_when_the_driver_beyond_its_parent_is_gone():
    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    parent, worker = _start(str(driver.pid))
    try:
        time.sleep(0.2)
        assert processes.pid_alive(worker)
        driver.kill()
        driver.wait()
        assert _gone(worker, 3 * processes.WATCH_SECONDS + 2)
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_sigterm_ends_a_worker_without_the_parents_handler():
    parent, worker = _start()
    try:
        os.kill(worker, signal.SIGTERM)
        assert _gone(worker)
    finally:
        parent.kill()
        out = parent.communicate()[0]
    assert "parent handler ran" not in out


def test_pid_alive():
    assert processes.pid_alive(os.getpid())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not processes.pid_alive(dead.pid)
