"""An enumerable slate world: exact slate probabilities and exact values.

A handful of contexts, a handful of items (default 5) and K slots (default 3),
so every slate can be listed (60 orderings without repetition, or m^K with
repetition) and every quantity the estimators need is exact:

- policies are probability tables over the listed slates, per context:
  Plackett-Luce from per-context softmax scores (a ranking without
  repetition: draw slot 0 from softmax(u), slot 1 from the softmax of the
  rest, ...), or independent slots (each slot its own softmax; items may
  repeat). The logging policy is close to uniform; the target prefers
  attractive items, so the two differ;
- marginals P(item a at slot k | x), prefix probabilities P(s_0..k | x) of
  every slate, and the logging policy's pair matrix Gamma (PI);
- the exact value of a policy, sum_x P(x) sum_s pi(s|x) sum_k E[r_k | x, s].

Reward structures (``STRUCTURES``), each with an attraction
``theta[x, a]`` in (0, 1):

``independent``
    r_k ~ Bernoulli(theta[x, s_k] * kappa_k): slot k's reward depends on the
    item at it and the slot only (position-based model; examination
    kappa_k = 0.75^k). Additive over (slot, item).
``cascade``
    the user reads top-down and stops at the first click: the item at slot
    k is clicked with probability theta[x, s_k] if nothing above was, so
    E[r_k] = theta[x, s_k] prod_{j<k} (1 - theta[x, s_j]): it depends on the
    items at and above k.
``interaction``
    items have one of two categories; an item's click probability,
    theta[x, s_k] * kappa_k, shrinks by ``beta`` times the share of the other
    slots, above *or below*, that hold an item of its category (redundancy).

Which estimators are unbiased (``UNBIASED``): standard IPS always; IIPS in
``independent``; RIPS in ``independent`` and ``cascade``; PI in
``independent`` (the only additive structure).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from bandit_engine import InvalidArgument
from simulators.slate.estimators import FloatArray
from simulators.slate.pseudo_inverse import IntArray, pair_marginals, slot_item_marginals

__all__ = [
    "LOGGING_KINDS",
    "STRUCTURES",
    "UNBIASED",
    "SlateInputs",
    "SlateSample",
    "SlateTables",
    "SlateWorld",
    "enumerate_slates",
    "independent_slots",
    "plackett_luce",
]

STRUCTURES = ("independent", "cascade", "interaction")
LOGGING_KINDS = ("plackett_luce", "independent")
#: structure -> the estimators that are unbiased in it
UNBIASED: dict[str, frozenset[str]] = {
    "independent": frozenset({"ips", "iips", "rips", "pi"}),
    "cascade": frozenset({"ips", "rips"}),
    "interaction": frozenset({"ips"}),
}


def enumerate_slates(n_items: int, n_slots: int, *, repeats: bool = False) -> IntArray:
    """(S, K) every slate: ordered, without repetition unless ``repeats``."""
    if not 1 <= n_slots <= n_items:
        raise InvalidArgument(f"n_slots={n_slots!r} must be between 1 and n_items={n_items!r}")
    it = (
        itertools.product(range(n_items), repeat=n_slots)
        if repeats
        else itertools.permutations(range(n_items), n_slots)
    )
    return np.array(list(it), dtype=np.int64)


def plackett_luce(scores: FloatArray, slates: IntArray) -> FloatArray:
    """(C, S) Plackett-Luce probabilities of ``slates`` (no repetition) from
    per-context scores (C, m)."""
    u = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    w = np.exp(u - u.max(axis=1, keepdims=True))
    prob = np.ones((w.shape[0], slates.shape[0]))
    left = np.repeat(w.sum(axis=1, keepdims=True), slates.shape[0], axis=1)
    for k in range(slates.shape[1]):
        wk = w[:, slates[:, k]]
        prob *= wk / left
        left = left - wk
    return prob


def independent_slots(scores: FloatArray, slates: IntArray) -> FloatArray:
    """(C, S) probabilities when each slot k draws its item from softmax(scores[:, k])
    on its own (C, K, m) scores; ``slates`` must list every slate with repetition."""
    u = np.asarray(scores, dtype=np.float64)
    p = np.exp(u - u.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    prob = np.ones((u.shape[0], slates.shape[0]))
    for k in range(slates.shape[1]):
        prob *= p[:, k, slates[:, k]]
    return prob


@dataclass(frozen=True, eq=False)
class SlateSample:
    """A log drawn from the world: row i shows slate ``slate[i]`` in context
    ``context[i]``; ``items[i]`` are its items, ``slot_rewards[i]`` its rewards."""

    context: IntArray  # (n,)
    slate: IntArray  # (n,) index into SlateWorld.slates
    items: IntArray  # (n, K)
    slot_rewards: FloatArray  # (n, K)

    @property
    def n(self) -> int:
        return int(self.context.shape[0])


@dataclass(frozen=True, eq=False)
class SlateInputs:
    """Everything the slate estimators take, for one log (per row unless noted)."""

    slot_rewards: FloatArray  # (n, K)
    slates: IntArray  # (n, K) item indices
    context: IntArray  # (n,)
    target_joint: FloatArray  # (n,)
    logging_joint: FloatArray  # (n,)
    target_marginal: FloatArray  # (n, K)
    logging_marginal: FloatArray  # (n, K)
    target_prefix: FloatArray  # (n, K)
    logging_prefix: FloatArray  # (n, K)
    target_slot_item: FloatArray  # (C, K, m) per context
    logging_pairs: FloatArray  # (C, K*m, K*m) per context


@dataclass(frozen=True, eq=False)
class SlateWorld:
    """Contexts, items, slots, two policies and a reward structure; see the module."""

    structure: str
    logging_kind: str
    slates: IntArray  # (S, K)
    context_p: FloatArray  # (C,)
    logging: FloatArray  # (C, S)
    target: FloatArray  # (C, S)
    attraction: FloatArray  # (C, m)
    examination: FloatArray  # (K,)
    category: IntArray  # (m,)
    beta: float
    expected: FloatArray  # (C, S, K) E[r_k | x, s]

    @classmethod
    def make(
        cls,
        structure: str = "independent",
        *,
        n_contexts: int = 3,
        n_items: int = 5,
        n_slots: int = 3,
        logging: str = "plackett_luce",
        target_strength: float = 2.0,
        beta: float = 0.8,
        seed: int = 0,
    ) -> SlateWorld:
        """A world drawn from ``seed``: attractions theta ~ U(0.05, 0.5),
        logging scores ~ N(0, 0.3^2) (near uniform), target scores
        ``target_strength`` * standardised theta + N(0, 0.3^2)."""
        if structure not in STRUCTURES:
            raise InvalidArgument(f"structure={structure!r} must be one of {STRUCTURES}")
        if logging not in LOGGING_KINDS:
            raise InvalidArgument(f"logging={logging!r} must be one of {LOGGING_KINDS}")
        if n_contexts < 1 or n_items < 2:
            raise InvalidArgument("need at least one context and two items")
        rng = np.random.default_rng(seed)
        slates = enumerate_slates(n_items, n_slots, repeats=logging == "independent")
        theta = rng.uniform(0.05, 0.5, (n_contexts, n_items))
        kappa: FloatArray = 0.75 ** np.arange(n_slots, dtype=np.float64)
        category = rng.permutation(np.arange(n_items) % 2).astype(np.int64)
        context_p = rng.dirichlet(np.full(n_contexts, 5.0))
        if logging == "plackett_luce":
            mu = plackett_luce(rng.normal(0.0, 0.3, (n_contexts, n_items)), slates)
        else:
            mu = independent_slots(rng.normal(0.0, 0.3, (n_contexts, n_slots, n_items)), slates)
        z = (theta - theta.mean(axis=1, keepdims=True)) / theta.std(axis=1, keepdims=True)
        u_pi = target_strength * z + rng.normal(0.0, 0.3, z.shape)
        if logging == "plackett_luce":
            pi = plackett_luce(u_pi, slates)
        else:  # the target also repeats nothing; give its slates in the same listing
            pi = np.zeros_like(mu)
            distinct = np.array([len(set(s)) == n_slots for s in slates.tolist()])
            pi[:, distinct] = plackett_luce(u_pi, slates[distinct])
        expected = _expected(structure, slates, theta, kappa, category, beta)
        return cls(
            structure, logging, slates, context_p, mu, pi, theta, kappa, category, float(beta),
            expected,
        )  # fmt: skip

    # ----------------------------------------------------------- shape
    @property
    def n_items(self) -> int:
        return int(self.attraction.shape[1])

    @property
    def n_slots(self) -> int:
        return int(self.slates.shape[1])

    @property
    def n_contexts(self) -> int:
        return int(self.context_p.shape[0])

    def _policy(self, policy: str | FloatArray) -> FloatArray:
        if isinstance(policy, str):
            if policy not in ("logging", "target"):
                raise InvalidArgument(f"policy={policy!r} must be 'logging', 'target' or a table")
            return self.logging if policy == "logging" else self.target
        p = np.asarray(policy, dtype=np.float64)
        if p.shape != self.logging.shape:
            raise InvalidArgument(f"policy has shape {p.shape}; expected {self.logging.shape}")
        return p

    # ----------------------------------------------------------- exact
    def value(self, policy: str | FloatArray = "target") -> float:
        """Exact expected slate reward (sum of the slot rewards) of a policy."""
        p = self._policy(policy)
        return float(self.context_p @ np.einsum("cs,csk->c", p, self.expected))

    def marginals(self, policy: str | FloatArray = "target") -> FloatArray:
        """(C, K, m) P(item a at slot k | context)."""
        return slot_item_marginals(self.slates, self._policy(policy), self.n_items)

    def prefixes(self, policy: str | FloatArray = "target") -> FloatArray:
        """(C, S, K): probability that the policy shows slate s's items at slots 0..k."""
        p = self._policy(policy)
        out = np.empty((p.shape[0], self.slates.shape[0], self.n_slots))
        for k in range(self.n_slots):
            _, group = np.unique(self.slates[:, : k + 1], axis=0, return_inverse=True)
            group = group.reshape(-1)
            sums = np.zeros((p.shape[0], int(group.max()) + 1))
            np.add.at(sums.T, group, p.T)
            out[:, :, k] = sums[:, group]
        return out

    def pairs(self, policy: str | FloatArray = "logging") -> FloatArray:
        """(C, K*m, K*m) the policy's Gamma (pair marginals), for PI."""
        return pair_marginals(self.slates, self._policy(policy), self.n_items)

    # --------------------------------------------------------- sampling
    def sample(
        self, n: int, rng: np.random.Generator, policy: str | FloatArray = "logging"
    ) -> SlateSample:
        """``n`` rows: a context, a slate from ``policy`` and the slot rewards."""
        if n < 1:
            raise InvalidArgument(f"n={n!r} must be >= 1")
        p = self._policy(policy)
        ctx = rng.choice(self.n_contexts, size=n, p=self.context_p).astype(np.int64)
        u = rng.random(n)
        idx = np.empty(n, dtype=np.int64)
        cum = np.cumsum(p, axis=1)
        for c in range(self.n_contexts):
            rows = ctx == c
            idx[rows] = np.searchsorted(cum[c], u[rows] * cum[c, -1], side="right")
        idx = np.minimum(idx, p.shape[1] - 1)
        items = self.slates[idx]
        v = rng.random((n, self.n_slots))
        if self.structure == "cascade":
            click = v < self.attraction[ctx[:, None], items]
            r = click & (np.cumsum(click, axis=1) == 1)
        else:
            r = v < self.expected[ctx, idx]
        return SlateSample(ctx, idx, items, r.astype(np.float64))

    def inputs(self, log: SlateSample, tables: SlateTables | None = None) -> SlateInputs:
        """The estimators' inputs for ``log``, looked up in the exact tables."""
        t = tables or self.tables()
        c, s = log.context, log.slate
        k = np.arange(self.n_slots)
        return SlateInputs(
            slot_rewards=log.slot_rewards,
            slates=log.items,
            context=c,
            target_joint=self.target[c, s],
            logging_joint=self.logging[c, s],
            target_marginal=t.target_marginals[c[:, None], k, log.items],
            logging_marginal=t.logging_marginals[c[:, None], k, log.items],
            target_prefix=t.target_prefixes[c, s],
            logging_prefix=t.logging_prefixes[c, s],
            target_slot_item=t.target_marginals,
            logging_pairs=t.logging_pairs,
        )

    def tables(self) -> SlateTables:
        """The exact per-context tables ``inputs`` looks rows up in (computed once)."""
        return SlateTables(
            self.marginals("target"),
            self.marginals("logging"),
            self.prefixes("target"),
            self.prefixes("logging"),
            self.pairs("logging"),
        )


@dataclass(frozen=True, eq=False)
class SlateTables:
    """Exact per-context tables of a world: marginals, prefixes, the logging Gamma."""

    target_marginals: FloatArray
    logging_marginals: FloatArray
    target_prefixes: FloatArray
    logging_prefixes: FloatArray
    logging_pairs: FloatArray


def _expected(
    structure: str,
    slates: IntArray,
    theta: FloatArray,
    kappa: FloatArray,
    category: IntArray,
    beta: float,
) -> FloatArray:
    """(C, S, K) E[r_k | x, s] of each structure."""
    att = theta[:, slates]  # (C, S, K)
    k = slates.shape[1]
    if structure == "independent":
        out: FloatArray = att * kappa
        return out
    if structure == "cascade":
        none_above = np.cumprod(np.concatenate([np.ones_like(att[:, :, :1]), 1 - att], axis=2), 2)
        out = att * none_above[:, :, :k]
        return out
    cat = category[slates]  # (S, K)
    same = (cat[:, :, None] == cat[:, None, :]).sum(axis=2) - 1  # other slots, same category
    share = same / max(1, k - 1)
    out = att * kappa * (1.0 - beta * share)[None, :, :]
    return out
