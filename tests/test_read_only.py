"""Read-only outputs (issue 15): every command that writes refuses a place it cannot write in
one line, exit 2, before doing the work, and replaces nothing.

A test running as root cannot make a place read-only for itself (root ignores permissions), so
when the tests run as root the commands run as an unprivileged user (uid/gid 65534, `nobody`)
through util-linux's `setpriv`, keeping only CAP_DAC_READ_SEARCH (read anything, as root could:
the interpreter lives under /root) and no right to write where the mode forbids; otherwise as
the current user. The read-only folders are mode 0o555.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
AS_NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
             "--inh-caps", "+dac_read_search", "--ambient-caps", "+dac_read_search"]
CONFIG = """\
name: ro
seeds: 2
data: {name: circle, samples: 40}
model: {widths: [4, 3], activation: relu}
init: [he_normal, xavier_normal]
train: {epochs: 5}
"""


@pytest.fixture
def place() -> Iterator[Path]:
    """A folder the unprivileged child can read (pytest's tmp_path is 0o700 for root)."""
    base = Path(tempfile.mkdtemp(prefix="initlab-ro-"))
    os.chmod(base, 0o777)  # writable by the child, but for ro/
    (base / "c.yaml").write_text(CONFIG)
    os.chmod(base / "c.yaml", 0o644)
    (base / "mpl").mkdir(mode=0o777)
    os.chmod(base / "mpl", 0o777)
    (base / "ro").mkdir()
    os.chmod(base / "ro", 0o555)
    yield base
    for p in base.rglob("*"):
        if p.is_dir():
            os.chmod(p, 0o755)
    shutil.rmtree(base)


def initlab(place: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(place / "mpl"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("GITHUB_ACTIONS", None)
    return subprocess.run([*(AS_NOBODY if ROOT else []), sys.executable, "-m", "initlab.cli",
                           *args], cwd=place, env=env, capture_output=True, text=True,
                          timeout=120)


def one_line(r: subprocess.CompletedProcess[str], code: int) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


pytestmark = [pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions"),
              pytest.mark.skipif(ROOT and shutil.which("setpriv") is None,
                                 reason="as root, needs setpriv to run as another user")]


def test_the_child_runs_as_a_user_who_cannot_write_there(place):
    """The premise: the read-only folder refuses the child's writes (a root child would not
    be refused, and every test below would pass for the wrong reason)."""
    r = subprocess.run([*(AS_NOBODY if ROOT else []), sys.executable, "-c",
                        "open('ro/probe', 'w')"], cwd=place, capture_output=True, text=True)
    assert r.returncode == 1 and "PermissionError" in r.stderr, r.stderr


@pytest.mark.parametrize("args", [
    ["run", "c.yaml", "-q", "--out", "ro/x"],
    ["sweep", "c.yaml", "--grid", "train.lr=0.1,0.2", "-q", "--out", "ro/x"],
    ["theory", "phase-diagram", "--out", "ro/p.png"],
    ["schema", "--out", "ro/s.json"],
])
def test_a_read_only_output_is_one_line_before_any_work(place, args):
    line = one_line(initlab(place, *args), 2)
    assert "Permission denied" in line and "ro/" in line, line
    assert not list((place / "ro").iterdir())


def test_check_outputs_in_a_read_only_place_are_one_line(place):
    r = initlab(place, "run", "c.yaml", "-q", "--no-plots", "--out", "res")
    assert r.returncode == 0, r.stderr
    for args in (["--junit-xml", "ro/j.xml"], ["--baseline", "ro/b.yaml", "--update-baseline"]):
        line = one_line(initlab(place, "check", "res", *args), 2)
        assert "cannot be written here" in line, line
    assert not list((place / "ro").iterdir())


@pytest.mark.parametrize("read_only", ["folder", "parent"])
def test_report_on_a_read_only_results_folder_is_one_line_and_replaces_nothing(place,
                                                                              read_only):
    """A read-only folder in a writable parent was replaced (exit 0), its old copy left as
    `.res.old-*` (it could not be emptied); a read-only parent named the lock file."""
    parent = place / "p"
    parent.mkdir(mode=0o777)
    os.chmod(parent, 0o777)
    r = initlab(place, "run", "c.yaml", "-q", "--no-plots", "--out", "p/res")
    assert r.returncode == 0, r.stderr
    before = sorted(p.name for p in (parent / "res").iterdir())
    os.chmod(parent / "res" if read_only == "folder" else parent, 0o555)
    line = one_line(initlab(place, "report", "p/res"), 2)
    assert line.startswith("error: p/res: cannot write the report here") and \
        "nothing was replaced" in line, line
    assert sorted(p.name for p in (parent / "res").iterdir()) == before
    assert sorted(p.name for p in parent.iterdir()) == ["res"]  # no .old, .tmp or lock left
