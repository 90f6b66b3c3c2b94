"""Click models: what a ranked list's silence teaches.

A Recommend with ``k`` > 1 shows a ranked list. Each shown arm ends with
exactly one reward: a Feedback, or the experiment's ``default_reward`` when
the reward window closes. A Feedback is an observation (the caller saw the
arm's outcome) and always counts as a whole event. The click model says how
much each *default* reward counts, from its slot and the decision's clicks
(a click: a Feedback whose reward is above ``default_reward``):

- ``independent``: every default reward counts 1, whatever its slot.
- ``cascade`` (Craswell et al. 2008; Kveton et al. 2015, "Cascading
  Bandits"): the user scans the list from the top and stops after the last
  click. Slots above the last click were examined and not clicked (weight
  1); slots below it were not examined and teach nothing (weight 0). A list
  without a click was examined to the end (weight 1 everywhere).
- ``position_based`` (PBM; Richardson et al. 2007, Chuklin et al. 2015):
  slot ``p`` is examined with probability ``examination[p]``, and a default
  reward at slot ``p`` counts ``examination[p]``: the chance that it was an
  examined non-click. The curve is given per experiment, or estimated from
  the decision log (``python -m simulators position-bias``). Slots past the
  given curve use its last value.

The posterior is therefore the closed form over weighted impressions: a
Beta arm holds ``prior + sum(w * r)`` successes and ``prior + sum(w * (1 -
r))`` failures, a linear arm ``lambda I + sum(w x x^T)`` and ``sum(w r x)``.
Weights are stored with each reward row, so recovery and the learner
replay the very same events.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bandit_engine._exceptions import InvalidArgument

__all__ = [
    "CLICK_MODELS",
    "ClickModel",
    "default_examination",
]

#: The click models, by their API names (``ExperimentConfig.click_model``).
CLICK_MODELS = ("independent", "cascade", "position_based")
#: Longest examination curve an experiment may give.
MAX_EXAMINATION_SLOTS = 1_000


def default_examination(k: int) -> tuple[float, ...]:
    """The examination curve ``position_based`` uses when none is given:
    ``1 / log2(p + 2)`` for slot ``p`` (the DCG discount: 1, 0.63, 0.5, 0.43,
    ...)."""
    return tuple(1.0 / math.log2(p + 2) for p in range(k))


#: ``default_examination`` over the first 10 slots; later slots use the last.
DEFAULT_EXAMINATION = default_examination(10)


@dataclass(frozen=True)
class ClickModel:
    """A click model and its examination curve (``position_based`` only)."""

    kind: str = "independent"
    examination: Sequence[float] = ()

    def __post_init__(self) -> None:
        if self.kind not in CLICK_MODELS:
            raise InvalidArgument(
                f"click_model={self.kind!r} unknown; expected one of {list(CLICK_MODELS)}"
            )
        curve = check_examination(self.examination)
        if self.kind != "position_based" and curve:
            raise InvalidArgument(
                f"examination is for click_model='position_based'; click_model={self.kind!r}"
            )
        if self.kind == "position_based" and not curve:
            curve = DEFAULT_EXAMINATION
        object.__setattr__(self, "examination", curve)

    def slot_examination(self, k: int) -> np.ndarray:
        """The examination probability of slots 0..k-1 (1 for models without one)."""
        if self.kind != "position_based":
            return np.ones(k)
        e = np.asarray(self.examination, dtype=np.float64)  # a tuple once built
        if k <= e.shape[0]:
            return e[:k].copy()
        return np.concatenate([e, np.full(k - e.shape[0], e[-1])])

    def default_weights(self, k: int, clicked: Sequence[int] | np.ndarray) -> np.ndarray:
        """How much a default reward counts at each of slots 0..k-1 of a
        decision whose clicks are at the slots ``clicked``.

        A slot with a Feedback keeps its Feedback (weight 1); only the slots
        without one take these weights."""
        if self.kind == "independent":
            return np.ones(k)
        if self.kind == "position_based":
            return self.slot_examination(k)
        clicks = [int(p) for p in clicked]
        if not clicks:
            return np.ones(k)
        last = max(clicks)
        w = np.zeros(k)
        w[: last + 1] = 1.0
        return w


def check_examination(curve: object) -> tuple[float, ...]:
    """An examination curve: up to ``MAX_EXAMINATION_SLOTS`` probabilities
    in (0, 1]; raises ``InvalidArgument`` naming the first bad value."""
    if curve is None:
        return ()
    if isinstance(curve, (str, bytes)) or not isinstance(curve, (Sequence, np.ndarray)):
        raise InvalidArgument(f"examination={curve!r:.200} must be a list of probabilities")
    values = list(curve)
    if len(values) > MAX_EXAMINATION_SLOTS:
        raise InvalidArgument(
            f"examination has {len(values)} slots; the limit is {MAX_EXAMINATION_SLOTS}"
        )
    out = []
    for p, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise InvalidArgument(f"examination[{p}]={v!r} must be a number")
        f = float(v)
        if not (math.isfinite(f) and 0.0 < f <= 1.0):
            raise InvalidArgument(f"examination[{p}]={f!r} must be in (0, 1]")
        out.append(f)
    return tuple(out)
