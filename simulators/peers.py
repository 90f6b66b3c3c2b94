"""Peer libraries behind the simulators' policy interface (optional).

Each adapter offers what a simulation needs of a policy (``add_arm``,
``rank``, ``update_batch``, ``close``), so the runner drives MABWiser and
Vowpal Wabbit exactly as it drives the engine's policies, on the same
stream. The libraries are optional (the ``bench`` extra); ``available()``
lists the peers whose library imports.

- ``mabwiser_ts``, ``mabwiser_lints``, ``mabwiser_linucb``: MABWiser's
  ThompsonSampling (binary rewards), LinTS and LinUCB. MABWiser cannot
  predict before its first ``fit``, so until the first update the ranking is
  uniformly random (what any of these policies does at its prior). Rankings
  sort ``predict_expectations`` (sampled scores for the TS policies).
- ``vw_squarecb``, ``vw_epsilon``: Vowpal Wabbit ``--cb_explore_adf`` with
  SquareCB or epsilon-greedy exploration, ``-q sa`` (context x arm
  crosses). The context is namespace ``s`` (non-zero coordinates of ``x``),
  the arm namespace ``a`` (its feature hash ids: destination country, type,
  and an identity feature). The top slot is drawn from VW's pmf; the rest
  follow by probability. VW learns one action per example: each decision
  teaches it the top slot's reward, as cost ``1 - reward`` with the drawn
  probability.
"""

from __future__ import annotations

import importlib.util
from collections import deque
from typing import Any

import numpy as np
import numpy.typing as npt

from bandit_engine import ArmFeatures, InvalidArgument
from bandit_engine.kernels import top_k
from bandit_engine.policies import Ranking

__all__ = ["PEERS", "MABWiserPolicy", "VWPolicy", "available", "check_peer", "make_peer"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_JITTER = 1e-9


def _rank_scores(scores: FloatArray, k: int, rng: np.random.Generator) -> Ranking:
    jittered = scores + _JITTER * rng.random(scores.shape[0])
    order = top_k(jittered, k)
    return Ranking(order, scores[order])


def _check_k(arms: IntArray, k: int) -> None:
    if not 1 <= k <= arms.shape[0]:
        raise InvalidArgument(f"k={k!r} must be between 1 and {arms.shape[0]}")


# ----------------------------------------------------------------- MABWiser
class MABWiserPolicy:
    """A MABWiser ``MAB`` with arms 0, 1, 2, ... (``learning_policy`` from ``mabwiser.mab``)."""

    def __init__(self, learning_policy: Any, *, contextual: bool, seed: int) -> None:
        self.learning_policy = learning_policy
        self.contextual = contextual
        self.seed = seed
        self._n_arms = 0
        self._mab: Any = None

    def add_arm(self, features: ArmFeatures | None = None) -> int:
        idx = self._n_arms
        self._n_arms += 1
        if self._mab is not None:
            self._mab.add_arm(idx)
        return idx

    def rank(
        self, arms: IntArray, x: FloatArray | None, k: int, rng: np.random.Generator
    ) -> Ranking:
        arms = np.asarray(arms, dtype=np.int64)
        _check_k(arms, k)
        if self._mab is None:
            return _rank_scores(np.asarray(rng.random(arms.shape[0])), k, rng)
        ctx = None if not self.contextual else np.asarray(x, dtype=np.float64)[None, :]
        expectations = self._mab.predict_expectations(ctx)
        scores = np.array([float(expectations[int(a)]) for a in arms])
        return _rank_scores(scores, k, rng)

    def update_batch(self, arms: IntArray, xs: FloatArray | None, rewards: FloatArray) -> None:
        decisions = np.asarray(arms, dtype=np.int64)
        rewards = np.asarray(rewards, dtype=np.float64)
        ctx = np.asarray(xs, dtype=np.float64) if self.contextual else None
        if self._mab is None:
            from mabwiser.mab import MAB

            self._mab = MAB(list(range(self._n_arms)), self.learning_policy, seed=self.seed)
            self._mab.fit(decisions, rewards, ctx)
        else:
            self._mab.partial_fit(decisions, rewards, ctx)

    def close(self) -> None:
        self._mab = None


def _mabwiser(kind: str, dim: int, seed: int, **params: Any) -> MABWiserPolicy:
    from mabwiser.mab import LearningPolicy

    if kind == "mabwiser_ts":
        return MABWiserPolicy(LearningPolicy.ThompsonSampling(), contextual=False, seed=seed)
    if kind == "mabwiser_lints":
        lp = LearningPolicy.LinTS(
            alpha=params.get("alpha", 0.25), l2_lambda=params.get("l2_lambda", 1.0)
        )
    else:
        lp = LearningPolicy.LinUCB(
            alpha=params.get("alpha", 1.0), l2_lambda=params.get("l2_lambda", 1.0)
        )
    return MABWiserPolicy(lp, contextual=True, seed=seed)


# ------------------------------------------------------------ Vowpal Wabbit
class VWPolicy:
    """Vowpal Wabbit ``--cb_explore_adf`` (see the module docstring)."""

    def __init__(self, *, exploration: str = "squarecb", seed: int = 0, extra: str = "") -> None:
        import vowpalwabbit

        if exploration not in ("squarecb", "epsilon"):
            raise InvalidArgument(f"exploration={exploration!r} must be squarecb or epsilon")
        explore = "--squarecb" if exploration == "squarecb" else "--epsilon 0.1"
        args = f"--cb_explore_adf {explore} -q sa --quiet --random_seed {int(seed)}"
        self.args = f"{args} {extra}".strip()
        self._vw: Any = vowpalwabbit.Workspace(self.args)
        self._arm_text: list[str] = []
        # decisions waiting for their rewards, in order: (arms, shared line, pmf, top, shown)
        self._pending: deque[tuple[IntArray, str, FloatArray, int, int]] = deque()

    def add_arm(self, features: ArmFeatures | None = None) -> int:
        idx = len(self._arm_text)
        if features is None:
            self._arm_text.append(f"|a arm{idx}")
        else:
            toks = " ".join(
                f"f{int(i)}:{float(v):.6g}"
                for i, v in zip(features.ids, features.values, strict=True)
            )
            self._arm_text.append(f"|a {toks}")
        return idx

    @staticmethod
    def _shared(x: FloatArray | None) -> str:
        if x is None:
            return "shared |s bias"
        nz = np.flatnonzero(x)
        return "shared |s " + " ".join(f"i{j}:{x[j]:.6g}" for j in nz)

    def rank(
        self, arms: IntArray, x: FloatArray | None, k: int, rng: np.random.Generator
    ) -> Ranking:
        arms = np.asarray(arms, dtype=np.int64)
        _check_k(arms, k)
        shared = self._shared(None if x is None else np.asarray(x, dtype=np.float64))
        pmf = np.asarray(self._vw.predict([shared, *(self._arm_text[a] for a in arms)]))
        pmf = pmf / pmf.sum()
        top = int(rng.choice(arms.shape[0], p=pmf))
        rest = pmf + _JITTER * rng.random(arms.shape[0])
        rest[top] = np.inf
        order = top_k(rest, k)
        self._pending.append((arms, shared, pmf, top, k))
        return Ranking(order, pmf[order])

    def update_batch(self, arms: IntArray, xs: FloatArray | None, rewards: FloatArray) -> None:
        """Rewards of earlier decisions, in order, every shown slot of each (top slot first)."""
        arms = np.asarray(arms, dtype=np.int64)
        i = 0
        while i < arms.shape[0]:
            if not self._pending:
                raise InvalidArgument(
                    f"reward for arm {int(arms[i])} without a pending decision (VW learns "
                    "from the decisions it made, in order)"
                )
            eligible, shared, pmf, top, n_shown = self._pending.popleft()
            if int(arms[i]) != int(eligible[top]):
                raise InvalidArgument(
                    f"first reward of a decision is for arm {int(arms[i])}; its top slot "
                    f"showed arm {int(eligible[top])}"
                )
            lines = [shared]
            for j, a in enumerate(eligible):
                text = self._arm_text[a]
                if j == top:
                    text = f"0:{1.0 - float(rewards[i]):.6g}:{pmf[top]:.6g} {text}"
                lines.append(text)
            self._vw.learn(lines)
            i += n_shown  # the other slots' rewards: VW learns one action per example

    def close(self) -> None:
        if self._vw is not None:
            self._vw.finish()
            self._vw = None


def _vw(kind: str, dim: int, seed: int, **params: Any) -> VWPolicy:
    return VWPolicy(
        exploration="squarecb" if kind == "vw_squarecb" else "epsilon",
        seed=seed,
        extra=str(params.get("extra", "")),
    )


# ----------------------------------------------------------------- registry
#: kind -> (library module, builder, accepted parameters)
PEERS: dict[str, tuple[str, Any, tuple[str, ...]]] = {
    "mabwiser_ts": ("mabwiser", _mabwiser, ()),
    "mabwiser_lints": ("mabwiser", _mabwiser, ("alpha", "l2_lambda")),
    "mabwiser_linucb": ("mabwiser", _mabwiser, ("alpha", "l2_lambda")),
    "vw_squarecb": ("vowpalwabbit", _vw, ("extra",)),
    "vw_epsilon": ("vowpalwabbit", _vw, ("extra",)),
}


def available() -> dict[str, str]:
    """Peers whose library is installed: kind -> library."""
    return {
        kind: lib
        for kind, (lib, _, _) in PEERS.items()
        if importlib.util.find_spec(lib) is not None
    }


def check_peer(kind: str, params: dict[str, Any]) -> None:
    """Raise ``InvalidArgument`` naming the problem if ``kind(**params)`` cannot be built."""
    if kind not in PEERS:
        raise InvalidArgument(f"unknown peer {kind!r}; expected one of {sorted(PEERS)}")
    lib, _, accepted = PEERS[kind]
    if importlib.util.find_spec(lib) is None:
        raise InvalidArgument(
            f"peer {kind!r} needs {lib} (pip install 'bandit-engine[bench]' or pip install {lib})"
        )
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise InvalidArgument(
            f"peer {kind!r} has no parameter {unknown[0]!r}; it takes {list(accepted)}"
        )


def make_peer(kind: str, dim: int, *, seed: int, **params: Any) -> Any:
    """Build a peer adapter, e.g. ``make_peer("mabwiser_lints", 16, seed=1, alpha=0.25)``."""
    check_peer(kind, params)
    return PEERS[kind][1](kind, dim, seed, **params)
