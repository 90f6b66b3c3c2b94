"""Off-policy estimators with bootstrap confidence intervals.

Setting: a log of rows (x_i, a_i, r_i, p_i), where a_i is the first shown arm,
r_i its reward in [0, 1] and p_i = mu(a_i | x_i) the logging policy's
propensity; a target policy pi gives pi(a | x_i) over row i's candidates.
Estimators of V(pi) = E_x sum_a pi(a|x) E[r | x, a], with w_i = pi(a_i|x_i)/p_i:

========  ===========================================  =====================
logged    mean r_i                                     the logging policy
replay    sum c_i r_i / sum c_i, c_i = 1[pi's draw     Li et al. 2011; needs
          == a_i]                                      uniform logging
ips       mean w_i r_i                                 unbiased; high variance
snips     sum w_i r_i / sum w_i                        self-normalised
dm        mean sum_a pi(a|x_i) q(x_i, a)               reward model q
dr        dm + mean w_i (r_i - q(x_i, a_i))            doubly robust
========  ===========================================  =====================

q is a per-arm ridge regression on the context vector (``RidgeRewardModel``),
cross-fitted: each row is predicted by a model that did not see it.

Intervals: percentile bootstrap over rows (``n_boot`` resamples, seeded),
every estimator computed on the same resample. The resample sums are a Numba
kernel: every estimator is a ratio sum(num_i) / sum(den_i) of per-row terms
(``OPETerms.matrix``), which is all the kernel needs. DM and DR refit the
cross-fitted reward model on each of their ``model_boot`` resamples (default
``n_boot``; the ridge penalty stays the one selected on the whole log), so
their intervals include the model's estimation error. DM's interval is still
not a confidence interval for V(pi) when the model is misspecified: nothing
in a bootstrap covers that bias. ``Estimate.note`` says so on every DM
estimate (``simulators.estimators.estimates`` has the details).

Engine policies as targets: ``policy_target`` asks the policy's own
propensity machinery (``Policy.propensities``, Monte Carlo with ``draws``
posterior draws) for pi(. | x_i), row by row. Two modes:

- ``learn=False`` (fixed): the policy as given (e.g. warm-started on a
  training split) is frozen; V(pi) is the value of that one policy.
- ``learn=True`` (progressive): after row i's probabilities are taken the
  policy learns from row i's logged events, so row i is scored by the policy
  trained on rows < i. The estimate is the average value of that sequence of
  policies: how the candidate would have done had it been retrained on the
  traffic as it came (learning from the logged choices, not its own).

For how a policy learns from its *own* choices, use replay
(``simulators.replay``), which updates only on matched events.

Every random draw (propensity draws, the target's sampled action, the
reward model's folds, bootstrap weights of the streaming path) is keyed by
the seed and the row's event id (``rowseed``), so a row gets the same
numbers in memory, in any chunk, and on any Spark executor.

The parts: ``targets`` (target policies), ``reward_model`` (q),
``terms`` (per-row terms and point estimates), ``estimates``
(bootstrap intervals, ``estimate``, ``evaluate``), and for logs larger than
memory ``sums`` (mergeable sums), ``streaming`` (``evaluate_stream``,
``LocalRunner``) and ``spark`` (``SparkRunner``, needs pyspark).
"""

from __future__ import annotations

from simulators.estimators.estimates import (
    DM_NOTE_FIXED,
    DM_NOTE_REFIT,
    Estimate,
    bootstrap,
    estimate,
    evaluate,
)
from simulators.estimators.reward_model import (
    RIDGE_GRID,
    ModelRefit,
    RewardModelFit,
    RidgeRewardModel,
    reward_model_terms,
)
from simulators.estimators.streaming import (
    LocalRunner,
    StreamResult,
    StreamSettings,
    evaluate_stream,
)
from simulators.estimators.sums import ErrorSums, OPESums, RidgeSums
from simulators.estimators.targets import TargetProbs, matrix_target, policy_target, uniform_target
from simulators.estimators.terms import ESTIMATORS, OPETerms, dm, dr, ips, snips

__all__ = [
    "DM_NOTE_FIXED",
    "DM_NOTE_REFIT",
    "ESTIMATORS",
    "RIDGE_GRID",
    "ErrorSums",
    "Estimate",
    "LocalRunner",
    "ModelRefit",
    "OPESums",
    "OPETerms",
    "RewardModelFit",
    "RidgeRewardModel",
    "RidgeSums",
    "StreamResult",
    "StreamSettings",
    "TargetProbs",
    "bootstrap",
    "dm",
    "dr",
    "estimate",
    "evaluate",
    "evaluate_stream",
    "ips",
    "matrix_target",
    "policy_target",
    "reward_model_terms",
    "snips",
    "uniform_target",
]
