"""Forgetting by time: one clock per policy, on a grid, and event weights."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["Forgetting"]

FloatArray = npt.NDArray[np.float64]


class Forgetting:
    """Forgetting by time, on one clock for all of a policy's evidence.

    The clock moves on a grid of ``grid`` seconds, the time in which evidence
    loses ``STEP`` (1%) of its weight: when an event is decided in a later
    grid cell than the clock's, the clock moves to that cell's start and
    every arm's evidence, played or not, is scaled by 2^(-moved / half_life).
    An event decided at t counts 2^((t - clock) / half_life) of a whole
    one: about 1 to 1.01 for a new event, less for an older one. So the
    posterior is the prior plus sum_i 2^((t_i - clock) / half_life) times
    event i's evidence, whatever the batches; and as the clock moves only
    at events, in their order, the same events in the same order give the
    same arithmetic, bit for bit, however they are batched (a restart's
    replay, a learner's commits). Arms' caches are rebuilt once per move.
    """

    STEP = 0.01

    def __init__(self, half_life_s: float) -> None:
        self.half_life_s = half_life_s
        self.grid = half_life_s * math.log2(1.0 / (1.0 - self.STEP)) if half_life_s > 0 else 0.0
        self._cell = -math.inf  # no clock yet

    @property
    def started(self) -> bool:
        return self._cell > -math.inf

    @property
    def clock(self) -> float:
        """The clock in seconds (NaN before the first timed event)."""
        return self._cell * self.grid if self.started else math.nan

    def set_clock(self, clock: float | None) -> None:
        self._cell = -math.inf if clock is None else float(round(clock / self.grid))

    def plan(self, times: FloatArray) -> tuple[list[tuple[int, float]], FloatArray]:
        """Where the clock moves among events decided at ``times`` (NaN: not
        known), as (index of the first event after the move, factor on the
        evidence before it), and each event's weight. Moves the clock."""
        cells = np.floor(times / self.grid)
        cells[np.isnan(cells)] = -np.inf
        run = np.maximum.accumulate(np.maximum(cells, self._cell))
        prev = np.concatenate(([self._cell], run[:-1]))
        cuts = []
        for i in np.flatnonzero(run > prev).tolist():
            before = prev[i]
            factor = (
                1.0
                if before == -np.inf
                else math.exp2(-(run[i] - before) * self.grid / self.half_life_s)
            )
            cuts.append((i, factor))
        if times.shape[0]:
            self._cell = float(run[-1])
        with np.errstate(invalid="ignore"):
            weights = np.exp2((times - run * self.grid) / self.half_life_s)
        weights[np.isnan(weights)] = 1.0  # unknown time, or no clock yet
        return cuts, weights
