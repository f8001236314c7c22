"""The lifetime of the processes initlab forks: `run --workers`' training chunks, a sweep's
local workers and the figure processes all start with `become_worker`, so that none outlives
the process that started it or answers a signal meant for it.

A worker leaves Ctrl-C to its parent (which ends the workers itself), takes SIGTERM's default
(not the handler it inherited: the parent's clean-up would run in the child, or print a
traceback when a pool ends its workers), asks the kernel to SIGKILL it when its parent dies
(Linux `prctl(PR_SET_PDEATHSIG)`; it fires when the parent *thread* exits, so pools are made in
the main thread), and watches its parent (and, for a sweep, the driver beyond it) from a daemon
thread every WATCH_SECONDS, for platforms without prctl and for a parent that died before
prctl took effect.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

WATCH_SECONDS = 0.5  # how often a worker checks that its parent (and driver) are alive
ORPHANED = 70  # a worker's exit status when it ends because its parent or driver is gone
PR_SET_PDEATHSIG = 1


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists (another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # alive, another user's
    return True


def become_worker(driver: int | None = None) -> None:
    """Call first in a forked worker: SIGINT ignored, SIGTERM default, SIGKILL when the parent
    dies, and exit ORPHANED at once (or as soon as the watch sees it) when the parent or
    `driver` (a process beyond the parent, e.g. a sweep's driver) is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parent = os.getppid()
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    def orphaned() -> bool:
        return os.getppid() != parent or (driver is not None and not pid_alive(driver))

    if orphaned():
        os._exit(ORPHANED)

    def watch() -> None:
        while not orphaned():
            time.sleep(WATCH_SECONDS)
        os._exit(ORPHANED)

    threading.Thread(target=watch, name="initlab-watch-parent", daemon=True).start()
