"""Sweep batching: 4 init schemes x 25 seeds of the playground net as ONE population vs the 100
cells run one by one, side by side in this process (training only; no files are written).

    .venv/bin/python benchmarks/sweep_bench.py [--epochs 300] [--repeats 3]

Prints the best-of-`repeats` wall time of each way and their ratio, and checks that both ways
give the same final losses (a member's numbers do not depend on its population mates).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from initlab.experiment import run_experiment
from initlab.sweep import execute as sw

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sw.limit_threads()
    plan = sw.make_plan(str(ROOT / "configs" / "playground.yaml"),
                        grid=["init=zero,too_small,appropriate,too_large",
                              "seed=" + ",".join(map(str, range(25)))],
                        sets=["seeds=1", "data.seed=0", f"train.epochs={args.epochs}"])
    assert len(plan.cells) == 100 and len(plan.populations) == 1
    task = sw.task_of(plan.populations[0])

    together, alone = [], []
    for _ in range(args.repeats):  # interleaved, so that both see the same machine load
        t = time.perf_counter()
        parts = dict(sw.run_population(task))
        together.append(time.perf_counter() - t)
        t = time.perf_counter()
        singles = {c.id: run_experiment(c.config) for c in plan.cells}
        alone.append(time.perf_counter() - t)
    for c in plan.cells:
        a = singles[c.id].summary["variants"][0]["final_loss"]
        b = parts[c.id].summary["variants"][0]["final_loss"]
        assert np.array_equal(np.asarray(a, float), np.asarray(b, float), equal_nan=True), c.id
    best_t, best_a = min(together), min(alone)
    print(f"playground [2, 6, 3, 1] relu, {args.epochs} epochs, 4 inits x 25 seeds = 100 cells")
    print(f"  one population of 100 members: {best_t:8.3f} s  (best of {args.repeats})")
    print(f"  100 cells one by one:          {best_a:8.3f} s  (best of {args.repeats})")
    print(f"  speed-up: {best_a / best_t:.1f}x; final losses identical")


if __name__ == "__main__":
    main()
