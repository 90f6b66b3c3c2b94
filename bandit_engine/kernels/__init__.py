"""Numba kernels: scoring, top-k, propensities and posterior updates.

Every kernel is a pure function of its array arguments: random draws come in
as arguments (standard normals drawn by the caller's seeded Generator, or an
offset into a fixed table), so a seeded run reproduces exactly.

The GIL: kernels whose run time grows with a batch (updates, refreshes, the
shared model's draws) release it (``nogil``). The short kernels a Recommend
calls (argument checks, the fused ``gauss_decide``) hold it (``_JIT_GIL``):
each release of the GIL while other server threads wait for it hands the GIL
over (a futex wake and a context switch) and costs the caller another wait to
get it back, for a kernel of tens of microseconds: one GIL-holding call costs
a server fewer context switches and less CPU per Recommend than several
releasing ones.

Notation: ``A`` is a precision matrix (state of record), ``Ainv`` its cached
inverse, ``b`` the reward-weighted feature sum, ``lam`` the prior precision,
``gamma`` the forgetting factor (1.0 = none). With forgetting, an update first
shrinks the data part of the statistics, ``A <- lam*I + gamma*(A - lam*I)`` and
``b <- gamma*b``, and then adds the event, so the statistics stay the
discounted sums of the events applied so far.
"""

from __future__ import annotations

from bandit_engine.kernels.checks import (
    copy_checked,
    first_bad_feature,
    first_bad_feature_bytes,
    first_bad_input,
    first_out_of_range,
)
from bandit_engine.kernels.journal import JOURNAL_META, journal_put
from bandit_engine.kernels.linalg import (
    cholesky_lower,
    solve_lower_rows,
    solve_upper_transpose,
    spd_inverse,
    spd_solve,
)
from bandit_engine.kernels.propensity import (
    TABLE_MAX_ABS,
    argmax_counts,
    beta_first_counts,
    first_slot_counts_gauss,
    first_slot_propensities,
    gamma_bounds,
    gamma_draw,
)
from bandit_engine.kernels.scoring import (
    ensure_packed,
    ensure_packed_all,
    gauss_arm,
    gauss_decide,
    gauss_mean_std,
    gauss_mean_std_exact,
    gauss_rank,
    gauss_sample_top_k,
    pack_arm,
    packed_width,
    quad_context,
    quad_form,
    top_k,
)
from bandit_engine.kernels.shared import (
    chol_update_upper,
    factor_solve,
    joint_features,
    joint_matrix,
    shared_draw_scores,
    shared_scores,
    shared_update_batch,
    solve_upper,
    solve_upper_t,
    solve_upper_t_rows,
)
from bandit_engine.kernels.slot_propensity import (
    beta_slot_counts,
    slot_counts_gauss,
    slot_propensities,
    topk_match_counts,
)
from bandit_engine.kernels.updates import (
    NOISE_A0,
    NOISE_B0,
    NOISE_CENTER,
    NOISE_EXPLORATION,
    NOISE_FIXED,
    beta_update_batch,
    laplace_step,
    lin_decay_arms,
    lin_noise_scale,
    lin_update_batch,
    lin_update_one,
    logistic_decay_arms,
    logistic_update_batch,
    logistic_update_one,
    refresh_theta,
)

__all__ = [
    "JOURNAL_META",
    "NOISE_A0",
    "NOISE_B0",
    "NOISE_CENTER",
    "NOISE_EXPLORATION",
    "NOISE_FIXED",
    "TABLE_MAX_ABS",
    "argmax_counts",
    "beta_first_counts",
    "beta_slot_counts",
    "beta_update_batch",
    "chol_update_upper",
    "cholesky_lower",
    "copy_checked",
    "ensure_packed",
    "ensure_packed_all",
    "factor_solve",
    "first_bad_feature",
    "first_bad_feature_bytes",
    "first_bad_input",
    "first_out_of_range",
    "first_slot_counts_gauss",
    "first_slot_propensities",
    "gamma_bounds",
    "gamma_draw",
    "gauss_arm",
    "gauss_decide",
    "gauss_mean_std",
    "gauss_mean_std_exact",
    "gauss_rank",
    "gauss_sample_top_k",
    "joint_features",
    "joint_matrix",
    "journal_put",
    "laplace_step",
    "lin_decay_arms",
    "lin_noise_scale",
    "lin_update_batch",
    "lin_update_one",
    "logistic_decay_arms",
    "logistic_update_batch",
    "logistic_update_one",
    "pack_arm",
    "packed_width",
    "quad_context",
    "quad_form",
    "refresh_theta",
    "shared_draw_scores",
    "shared_scores",
    "shared_update_batch",
    "slot_counts_gauss",
    "slot_propensities",
    "solve_lower_rows",
    "solve_upper",
    "solve_upper_t",
    "solve_upper_t_rows",
    "solve_upper_transpose",
    "spd_inverse",
    "spd_solve",
    "top_k",
    "topk_match_counts",
]
