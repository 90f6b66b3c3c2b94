"""Slate off-policy evaluation: estimators, an enumerable world, real logs.

A slate is K items shown together in K ordered slots; each slot earns a
reward and a policy's value is the expected sum of them. Four estimators
(``estimators``, ``pseudo_inverse``), from the assumption-free to the most
assuming:

- ``slate_ips`` (standard IPS): joint slate ratio; unbiased always;
- ``slate_rips`` (reward-interaction IPS, McInerney et al. 2020): prefix
  ratios; unbiased when slot k's reward depends on the items at slots 0..k;
- ``slate_iips`` (independent IPS, Li et al. 2018): marginal ratios;
  unbiased when slot k's reward depends on the item at slot k only;
- ``slate_pi`` (pseudo-inverse, Swaminathan et al. 2017): the logging
  policy's pair matrix Gamma; unbiased when the slate reward is additive over
  (slot, item); ``slate_pi_independent`` is its closed form for logging
  policies with independent slots.

``worlds.SlateWorld`` enumerates every slate of a small world to give exact
values; ``study.run_study`` measures bias and interval coverage over repeated
logs; ``logs`` turns engine exports (``propensity_kind`` ``per_slot``) and
the Open Bandit Dataset into estimator inputs; ``cli`` is
``python -m simulators slate-evaluate``.
"""

from __future__ import annotations

from simulators.slate.estimators import (
    SlateEstimate,
    ratio_estimate,
    slate_iips,
    slate_ips,
    slate_rips,
)
from simulators.slate.pseudo_inverse import (
    pair_marginals,
    pi_coefficients,
    slate_pi,
    slate_pi_independent,
    slot_item_marginals,
)
from simulators.slate.study import ESTIMATORS, EstimatorStudy, WorldStudy, estimate_all, run_study
from simulators.slate.worlds import (
    STRUCTURES,
    UNBIASED,
    SlateInputs,
    SlateSample,
    SlateWorld,
    enumerate_slates,
    plackett_luce,
)

__all__ = [
    "ESTIMATORS",
    "STRUCTURES",
    "UNBIASED",
    "EstimatorStudy",
    "SlateEstimate",
    "SlateInputs",
    "SlateSample",
    "SlateWorld",
    "WorldStudy",
    "enumerate_slates",
    "estimate_all",
    "pair_marginals",
    "pi_coefficients",
    "plackett_luce",
    "ratio_estimate",
    "run_study",
    "slate_iips",
    "slate_ips",
    "slate_pi",
    "slate_pi_independent",
    "slate_rips",
    "slot_item_marginals",
]
