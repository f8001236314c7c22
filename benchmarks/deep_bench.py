"""make bench's end-to-end workload (issue 17): `initlab run` of a deep config in a fresh
process, its training time beside its total time (bench.py calls `deep_workload`;
`python benchmarks/deep_bench.py [deep50 deep1000 rezero10k]` alone).

The process runs the real command line as a user types it (`initlab run CONFIG --out DIR -q`:
--workers auto, so the figures are drawn on every core) with `initlab.nn.train.train`
(`train_residual` for a residual net) timed from inside (training = every optimizer step, the
statistics recorded on the way and the end-of-training pass; the decision-boundary frames that its
progress hook draws are not training and are left out); total = the whole process,
interpreter start included. Everything else (setup, boundaries, summaries, drawing, writing) is
total - training; the issue's budget: at most max(50% of training, 20 s). Also the peak RSS,
report.html's size and the largest PNG side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"deep50": ROOT / "benchmarks/deep50.yaml", "deep1000": ROOT / "benchmarks/deep1000.yaml",
           "rezero10k": ROOT / "configs/rezero_10k.yaml"}
DEFAULT = ("deep50",)  # make bench; the others by name

DRIVER = """
import json, resource, sys, time
t0 = time.perf_counter()
from initlab import experiment
from initlab.nn import train as train_mod
spent, frames = [0.0], [0.0]  # in train(); in its progress hook's boundary frames
inner, record = train_mod.train, experiment._BoundaryFrames.record
def timed(*a, **k):
    t, f = time.perf_counter(), frames[0]
    try:
        return inner(*a, **k)
    finally:
        spent[0] += time.perf_counter() - t - (frames[0] - f)
def timed_record(self, *a, **k):
    t = time.perf_counter()
    try:
        return record(self, *a, **k)
    finally:
        frames[0] += time.perf_counter() - t
experiment.train = timed
from initlab import experiment_residual
inner_residual = experiment_residual.train_residual
def timed_residual(*a, **k):
    t = time.perf_counter()
    try:
        return inner_residual(*a, **k)
    finally:
        spent[0] += time.perf_counter() - t
experiment_residual.train_residual = timed_residual
experiment._BoundaryFrames.record = timed_record
from initlab.cli import app
try:
    app(["run", sys.argv[1], "--out", sys.argv[2], "-q"], prog_name="initlab")
except SystemExit as e:
    if e.code:
        raise
print(json.dumps([time.perf_counter() - t0, spent[0],
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))
"""


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def deep_workload(name: str = "deep50") -> dict[str, Any]:
    config = CONFIGS[name]
    env = dict(os.environ, MPLBACKEND="Agg")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / name
        t_start = os.times().elapsed
        proc = subprocess.run([sys.executable, "-c", DRIVER, str(config), str(out)],
                              capture_output=True, text=True, env=env, cwd=ROOT)
        wall = os.times().elapsed - t_start
        if proc.returncode:
            raise RuntimeError(f"{name}: initlab run failed:\n{proc.stderr[-2000:]}")
        _inside, training, rss = json.loads(proc.stdout.strip().splitlines()[-1])
        pngs = {p.name: _png_size(p) for p in out.glob("*.png")}
        summary = json.loads((out / "summary.json").read_text())
        sizes = {p.name: p.stat().st_size for p in out.iterdir()}
    other = wall - training
    budget = max(0.5 * training, 20.0)
    return {"name": name, "config": str(config.relative_to(ROOT)),
            "command": f"initlab run {config.relative_to(ROOT)}",
            "members": len(summary["variants"]) * int(summary["seeds"]),
            "layers": len(summary["sizes"]) - 1, "steps": summary["steps"],
            "seconds": wall, "training_seconds": training, "other_seconds": other,
            "budget_seconds": budget, "within_budget": other <= budget,
            "peak_rss_bytes": int(rss) * 1024, "report_html_bytes": sizes["report.html"],
            "summary_json_bytes": sizes["summary.json"],
            "max_png_px": max((max(s) for s in pngs.values()), default=0),
            "load_average": os.getloadavg()}


def line(r: dict[str, Any]) -> str:
    return (f"{r['name']} ({r['command']}; {r['layers']} layers, {r['members']} members, "
            f"{r['steps']} steps): total {r['seconds']:.1f} s, training {r['training_seconds']:.1f}"
            f" s, the rest {r['other_seconds']:.1f} s (budget {r['budget_seconds']:.1f} s: "
            f"{'met' if r['within_budget'] else 'NOT met'}), peak RSS "
            f"{r['peak_rss_bytes'] / 2**20:.0f} MiB, report.html {r['report_html_bytes'] / 1e6:.2f}"
            f" MB, largest PNG side {r['max_png_px']} px")


if __name__ == "__main__":
    for n in sys.argv[1:] or DEFAULT:
        print(line(deep_workload(n)), flush=True)
