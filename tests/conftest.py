"""Shared test inputs."""

from __future__ import annotations

# Two variants (zero: symmetric; appropriate: trains) on 40 circle points, small enough to train
# in a test. Tests position problems by its line numbers: keep its 11 lines in this order.
SMALL_CONFIG = """\
name: small
seeds: 2
data: {name: circle, samples: 40}
model:
  widths: [4, 3]
  activation: relu
init:
  - {label: zero, scheme: zeros}
  - {label: appropriate, scheme: appropriate}
train: {loss: bce, optimizer: sgd, lr: 0.1, epochs: 30}
measure: {every: 10}
"""


def small_config(*, epochs: int = 30, every: int = 10) -> str:
    """SMALL_CONFIG with other `train.epochs` and `measure.every` (same lines, same positions)."""
    return SMALL_CONFIG.replace("epochs: 30", f"epochs: {epochs}").replace(
        "every: 10", f"every: {every}")
