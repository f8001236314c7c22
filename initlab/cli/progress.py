"""Progress of a run on stderr when stderr is not a terminal (CI logs, `nohup`, a pipe): plain
lines instead of a live bar, one per ~10% of the steps or every 10 s, whichever comes first,
each with the steps done, the elapsed time and an estimate of the time left.

    training deep50: 120/400 steps (30%), 12 s elapsed, ETA 28 s
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

FRACTION = 0.1  # a line every 10% of the steps
SECONDS = 10.0  # ... or every 10 s


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class PlainProgress:
    """A `progress(step, total)` callback that writes plain lines through `write`."""

    def __init__(self, label: str, write: Callable[[str], None], *,
                 fraction: float = FRACTION, seconds: float = SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.write, self.clock = label, write, clock
        self.fraction, self.seconds = fraction, seconds
        self.start = clock()
        self.last_time = self.start
        self.next_fraction = fraction
        self.done = False

    def __call__(self, step: int, total: int) -> None:
        if self.done or total <= 0:
            return
        now = self.clock()
        frac = min(step / total, 1.0)
        if step < total and frac < self.next_fraction and now - self.last_time < self.seconds:
            return
        elapsed = now - self.start
        eta = elapsed * (total - step) / step if step > 0 else math.inf
        self.write(f"{self.label}: {step}/{total} steps ({frac:.0%}), {_duration(elapsed)} "
                   f"elapsed, ETA {_duration(eta)}")
        self.last_time = now
        self.next_fraction = (math.floor(frac / self.fraction + 1e-9) + 1) * self.fraction
        self.done = step >= total

    def line(self, text: str) -> None:
        """A line about another phase (e.g. writing), with the time since the start."""
        self.write(f"{self.label}: {text} ({_duration(self.clock() - self.start)} elapsed)")
