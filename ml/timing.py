"""Stage timings that functions report alongside their results."""

from __future__ import annotations

import time


class Laps:
    """``lap(name)`` records the seconds since the previous lap (or creation) under name."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._tick = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._tick, 3)
        self._tick = now
