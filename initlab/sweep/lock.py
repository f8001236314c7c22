"""A sweep's lock and its workers' lifetime: the lock belongs to the driver alone, a lock whose
owner is dead is taken over, and local workers die with their driver.

`flock` locks belong to an open file, and a forked child shares its parent's open files: a
worker forked while the driver holds `.sweep.lock` would keep the lock (and keep computing)
after the driver was killed. So each worker closes the driver's lock files first
(`worker_init`), asks the kernel to kill it when its parent dies (Linux `PR_SET_PDEATHSIG`),
and watches the driver's pid twice a second.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from initlab.errors import InitlabError
from initlab.processes import become_worker, pid_alive

BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


class SweepBusyError(InitlabError):
    """Another sweep holds the lock of this results folder."""

    exit_code = 1


def limit_threads(threads: int = 1) -> None:
    """At most `threads` BLAS threads in this process (run in every local worker)."""
    for var in BLAS_VARS:
        os.environ[var] = str(threads)
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)


_HELD_LOCKS: set[int] = set()  # fds of the locks this driver holds (closed in forked workers)


def worker_init(driver: int, inherited: Sequence[int] = (), threads: int = 1,
                initializer: Callable[..., None] | None = None,
                initargs: tuple[Any, ...] = ()) -> None:
    """Every local worker starts here: it closes the driver's lock files it inherited by
    forking (a lock belongs to the driver alone), dies with its driver (SIGKILL or SIGTERM of
    the driver included), leaves Ctrl-C to the driver (which stops the workers) and runs
    at most `threads` BLAS threads, then `initializer(*initargs)` (run --workers: its
    progress queue)."""
    for fd in inherited:
        with contextlib.suppress(OSError):
            os.close(fd)
    become_worker(driver)
    limit_threads(threads)
    if initializer is not None:
        initializer(*initargs)


LOCK_FILE = ".sweep.lock"


def _owner(f: Any) -> int | None:
    """The pid written in a lock file ("pid N"), or None."""
    with contextlib.suppress(OSError, ValueError):
        f.seek(0)
        text = f.read().split()
        if len(text) == 2 and text[0] == "pid":
            return int(text[1])
    return None


def _open_locked(path: Path) -> tuple[Any, bool]:
    """`path` opened and flocked (non-blocking), or None when another open file holds it."""
    import fcntl

    f = open(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666), "r+")  # noqa: SIM115
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return f, False
    return f, True


def _same_file(f: Any, path: Path) -> bool:
    try:
        a, b = os.fstat(f.fileno()), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _acquire(folder: Path) -> Any:
    """The open, flocked lock file of `folder`, with this process's pid in it. A lock held in
    the name of a dead process (a descriptor some orphan inherited) is taken over: a new lock
    file, locked first, replaces it. Serialized by a short flock on the folder itself."""
    import fcntl

    path = folder / LOCK_FILE
    dfd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(dfd, fcntl.LOCK_EX)
        for _ in range(10):
            f, ok = _open_locked(path)
            if ok and not _same_file(f, path):  # removed by its last holder: open it again
                f.close()
                continue
            if not ok:
                pid = _owner(f)
                f.close()
                if pid is None or pid_alive(pid):
                    raise SweepBusyError(
                        f"{folder}: another sweep is writing here "
                        f"({f'pid {pid}' if pid else 'another process'}); wait for it to "
                        "finish or choose another --out")
                tmp = folder / f"{LOCK_FILE}.{os.getpid()}"
                f, ok = _open_locked(tmp)
                if not ok:  # pragma: no cover - our own pid's file
                    f.close()
                    continue
                os.replace(tmp, path)
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()}\n")
            f.flush()
            return f
        raise SweepBusyError(f"{folder}: the sweep lock keeps changing; try again")
    finally:
        os.close(dfd)


@contextlib.contextmanager
def lock(folder: Path) -> Iterator[None]:
    """Exclusive lock on folder/.sweep.lock; SweepBusyError if another live sweep holds it.
    The lock belongs to this process alone: forked workers close it (`worker_init`), and the
    file is removed when the lock is released."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    f = _acquire(folder)
    _HELD_LOCKS.add(f.fileno())
    try:
        yield
    finally:
        _HELD_LOCKS.discard(f.fileno())
        with contextlib.suppress(OSError):
            if _same_file(f, folder / LOCK_FILE):
                os.unlink(folder / LOCK_FILE)
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
