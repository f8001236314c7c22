"""make bench's residual workload: a deep ReZero net trained end to end in a fresh process
(bench.py calls `residual_workload`; `python benchmarks/residual_bench.py [DEPTH]` alone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def residual_workload(depth: int = 2000) -> dict[str, Any]:
    """configs/rezero_10k.yaml at `depth` blocks (2 variants: ReZero and plain He), 1 epoch of
    16 Adam steps, in a fresh process: wall time of training (from summary.json's wall_time_s)
    and of the whole run, per block and step, peak RSS, ReZero's loss before and after."""
    code = (
        "import resource, sys, time, json\n"
        "import initlab\nfrom initlab.config.schema import load_config\n"
        "t = time.perf_counter()\n"
        f"cfg = load_config({str(ROOT / 'configs/rezero_10k.yaml')!r}, overrides=["
        f"'model.depth={depth}', 'train.epochs=1'])\n"
        "s = initlab.run(cfg).summary\n"
        "v = s['variants'][0]\n"
        "print(json.dumps([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
        " time.perf_counter() - t, s['wall_time_s'], s['steps'], v['loss_curve']['mean'][0],"
        " v['final_loss'][0]]))\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    rss, total, train, steps, l0, l1 = json.loads(subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env=env).stdout.splitlines()[-1])
    return {"config": "configs/rezero_10k.yaml", "depth": depth, "members": 2, "steps": steps,
            "peak_rss_bytes": int(rss) * 1024, "seconds": total, "experiment_seconds": train,
            "us_per_block_step": 1e6 * train / (depth * max(steps, 1)),
            "rezero_loss": [l0, l1]}


if __name__ == "__main__":
    print(json.dumps(residual_workload(*(int(a) for a in sys.argv[1:2])), indent=1))
