"""Off-policy evaluation over a log in chunks, in memory that does not grow with it.

``evaluate_stream(log_files, policies, settings, runner)`` computes what the
in-memory path (``OPETerms.build`` + ``estimate``, ``python -m simulators
evaluate`` on a log in memory) computes, as mergeable sums
(``simulators.estimators.sums``) over chunks:

1. count: rows, and rows with the first shown arm's reward (the complete
   rows; the evaluation uses only these, in log order);
2. training: each policy is warm-started on the first ``train_frac`` of the
   complete rows, read in order on the driver (``Policy.update_batch`` per
   chunk);
3. preparation, on the evaluation rows: whether logging was uniform, and
   (DM, DR) the reward model's ridge sums per cross-fitting fold and arm.
   The reward model is fitted on this first pass over the evaluation rows,
   cross-fitted like the in-memory one (a row's fold is keyed by its event
   id), and solved from the sums per penalty;
4. (DM, DR with no ``--ridge``) the cross-fitted squared error of every
   penalty of ``RIDGE_GRID``, to choose one as the in-memory path does;
5. per policy: its probabilities on every evaluation row (the same
   ``policy_target`` code, row-keyed draws), the estimators' per-row terms
   and their sums, plus the Poisson bootstrap sums.

A ``runner`` maps a chunk function over the log and merges the results:
``LocalRunner`` walks the chunks in order in this process; the Spark runner
(``simulators.estimators.spark``) maps row groups over executors. The point
estimates equal the in-memory ones up to floating-point summation order.

Intervals: Poisson(1) bootstrap (each row weighted by an independent
Poisson(1) count per resample, keyed by the row: ``rowseed``), a streaming
stand-in for the in-memory path's multinomial resampling; the two agree
within their Monte Carlo error. DM's and DR's intervals hold the reward
model fixed (``Estimate.note`` says so): refitting per resample would need
ridge sums per resample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from bandit_engine import InvalidArgument
from simulators.estimators.estimates import Estimate, _note
from simulators.estimators.reward_model import (
    RIDGE_GRID,
    RidgeRewardModel,
    _target_q_rows,
)
from simulators.estimators.rowseed import add_poisson_sums, folds_of, row_keys
from simulators.estimators.sums import ErrorSums, OPESums, RidgeSums
from simulators.estimators.targets import policy_target, uniform_target
from simulators.estimators.terms import ESTIMATORS, OPETerms
from simulators.logs import BanditLog, LogFiles

__all__ = [
    "LocalRunner",
    "Runner",
    "StreamResult",
    "StreamSettings",
    "evaluate_stream",
    "train_policy",
]

S = TypeVar("S")
ChunkFn = Callable[[int, BanditLog], Any]


class Runner(Protocol):
    parallel: bool

    def map(self, fn: ChunkFn, label: str) -> list[Any]: ...

    def counts(self) -> list[int]: ...

    def reduce(self, fn: ChunkFn, label: str) -> Any: ...


class LocalRunner:
    """Chunks of ``rows`` decisions, in log order, in this process."""

    parallel = False

    def __init__(
        self,
        log_files: LogFiles,
        *,
        rows: int = 16384,
        progress: Callable[[str], Callable[[int, int], None]] | None = None,
    ) -> None:
        self.lf = log_files
        self.rows = rows
        self.progress = progress
        self.total = log_files.rows

    def _chunks(self, label: str) -> Iterator[tuple[int, BanditLog]]:
        bar = self.progress(label) if self.progress is not None else None
        done = 0
        for i, chunk in enumerate(self.lf.chunks(self.rows)):
            yield i, chunk
            done += chunk.n
            if bar is not None:
                bar(done, max(done, self.total or done))
        self.total = done

    def map(self, fn: ChunkFn, label: str) -> list[Any]:
        return [fn(i, c) for i, c in self._chunks(label)]

    def counts(self) -> list[int]:
        """Complete rows per chunk, in order (reads only the rewards)."""
        return self.lf.complete_counts(self.rows)

    def reduce(self, fn: ChunkFn, label: str) -> Any:
        out = None
        for i, c in self._chunks(label):
            part = fn(i, c)
            out = part if out is None else out.merge(part)
        return out


@dataclass(frozen=True)
class StreamSettings:
    names: tuple[str, ...] | None = None  # None: every estimator that applies
    learn: bool = False  # progressive mode
    draws: int = 1000
    seed: int = 0
    folds: int = 2
    lam: float | None = None
    n_boot: int = 1000
    alpha: float = 0.05
    train_frac: float = 0.5
    chunk_rows: int = 16384  # rows per chunk of the driver's training read


@dataclass
class StreamResult:
    rows: int
    complete: int
    n_train: int
    n_eval: int
    uniform: bool
    estimates: list[Estimate]
    behaviour: Estimate | None
    overlap: dict[str, dict[str, float]] = field(default_factory=dict)
    reward_model: dict[str, float] | None = None


@dataclass
class _Prep:
    uniform: bool
    n: int
    ridge: RidgeSums | None

    def merge(self, other: _Prep) -> _Prep:
        ridge = None
        if self.ridge is not None and other.ridge is not None:
            ridge = self.ridge.merge(other.ridge)
        return _Prep(self.uniform and other.uniform, self.n + other.n, ridge)


class _Split:
    """A chunk's complete rows split at the global cut (training | evaluation)."""

    def __init__(self, offsets: Sequence[int], cut: int) -> None:
        self.offsets = list(offsets)
        self.cut = cut

    def test(self, i: int, chunk: BanditLog) -> BanditLog:
        full = chunk.complete()
        start = self.offsets[i]
        if i + 1 >= len(self.offsets) or self.offsets[i + 1] - start != full.n:
            raise RuntimeError(
                f"chunk {i} has {full.n} rows with rewards but the counting pass saw "
                f"{self.offsets[i + 1] - start if i + 1 < len(self.offsets) else 'no chunk'}: "
                "the log changed between passes"
            )
        first = max(0, self.cut - start)
        if first == 0:
            return full
        return full.select(np.arange(min(first, full.n), full.n))


def train_policy(policy: Any, log_files: LogFiles, cut: int, rows: int = 16384) -> int:
    """Warm-start ``policy`` on the first ``cut`` complete rows (log order),
    as ``build_policy`` does on an in-memory split; returns the rows read."""
    seen = 0
    for chunk in log_files.chunks(rows):
        if seen >= cut:
            break
        full = chunk.complete()
        part = full.select(np.arange(min(full.n, cut - seen)))
        seen += part.n
        arms, xs, rewards = part.training_events()
        if arms.shape[0]:
            policy.update_batch(arms, xs, rewards)
    return seen


def _fold_models(ridge: RidgeSums, lam: float) -> list[RidgeRewardModel]:
    out = []
    for mean, theta in ridge.models(lam):
        m = RidgeRewardModel(lam)
        m.mean_, m.theta_ = mean, theta
        out.append(m)
    return out


def _q_terms(
    test: BanditLog, target: Any, models: list[RidgeRewardModel], folds: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    fold = folds_of(row_keys(test.event_id, seed), folds)
    q_logged = np.empty(test.n)
    q_target = np.empty(test.n)
    for f, model in enumerate(models):
        rows = np.flatnonzero(fold == f)
        if rows.shape[0] == 0:
            continue
        q_logged[rows] = model.predict(test.x[rows], test.action[rows])
        q_target[rows] = _target_q_rows(model, test.x, target.ptr, target.idx, target.p, rows)
    return q_logged, q_target


def evaluate_stream(
    log_files: LogFiles,
    policies: Sequence[tuple[str, Any]],
    settings: StreamSettings,
    runner: Runner,
    *,
    note: Callable[[str], None] | None = None,
) -> StreamResult:
    """Estimates for each (label, policy) (``"uniform"``: the uniform policy;
    a ``Policy``, untrained: warm-started here on the first ``train_frac``
    of the complete rows, then frozen or progressive)."""
    st = settings
    if not 0.0 <= st.train_frac < 1.0:
        raise InvalidArgument(f"train_frac={st.train_frac!r} must be in [0, 1)")
    if st.n_boot < 0:
        raise InvalidArgument(f"n_boot={st.n_boot!r} must be >= 0")
    if not 0.0 < st.alpha < 1.0:
        raise InvalidArgument(f"alpha={st.alpha!r} must be in (0, 1)")
    if st.folds < 1:
        raise InvalidArgument(f"folds={st.folds!r} must be >= 1")
    if st.learn and runner.parallel:
        raise InvalidArgument("progressive mode learns row after row: it needs a local run")
    say = note or (lambda _msg: None)
    counts = runner.counts()
    complete = int(sum(counts))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(int).tolist()
    cut = round(st.train_frac * complete) if st.train_frac > 0 else 0
    split = _Split(offsets, cut)
    wanted = [n for n in (st.names or ESTIMATORS) if n != "logged"]
    for n in wanted:
        if n not in ESTIMATORS:
            raise InvalidArgument(f"unknown estimator {n!r}; expected one of {ESTIMATORS}")
    need_q = "dm" in wanted or "dr" in wanted
    lf = log_files
    n_arms, dim = len(lf.arm_ids), lf.dim

    def prep(i: int, chunk: BanditLog) -> _Prep:
        test = split.test(i, chunk)
        ridge = None
        if need_q:
            ridge = RidgeSums.zeros(st.folds, n_arms, dim)
            fold = folds_of(row_keys(test.event_id, st.seed), st.folds)
            ridge.add(fold, test.action, test.x, test.logged_reward)
        p = test.logged_propensity
        if test.n and not (np.isfinite(p).all() and (p > 0).all()):
            raise InvalidArgument("every logged propensity must be finite and > 0")
        return _Prep(test.is_uniform(), test.n, ridge)

    pre: _Prep = runner.reduce(prep, "prepare") or _Prep(True, 0, None)
    uniform = pre.uniform
    if "replay" in wanted and not uniform:
        wanted.remove("replay")
    say(
        f"{complete} rows with rewards; training on {cut}, evaluating on {pre.n}"
        + (", uniformly logged" if uniform else "")
    )
    models: list[RidgeRewardModel] = []
    fit_summary = None
    if need_q and pre.ridge is not None:
        grid = RIDGE_GRID if st.lam is None else (float(st.lam),)
        by_lam = [_fold_models(pre.ridge, lam) for lam in grid]

        def errors(i: int, chunk: BanditLog) -> ErrorSums:
            test = split.test(i, chunk)
            fold = folds_of(row_keys(test.event_id, st.seed), st.folds)
            sq = np.zeros(len(grid))
            r = test.logged_reward
            for g, fold_models in enumerate(by_lam):
                for f, m in enumerate(fold_models):
                    rows = np.flatnonzero(fold == f)
                    q = m.predict(test.x[rows], test.action[rows])
                    sq[g] += float(((r[rows] - q) ** 2).sum())
            return ErrorSums(sq, test.n)

        err = runner.reduce(errors, "reward model") or ErrorSums(np.zeros(len(grid)))
        mse = err.mse()
        best = int(np.argmin(np.where(np.isnan(mse), np.inf, mse)))
        models = by_lam[best]
        fit_summary = {
            "ridge": grid[best],
            "mse": float(mse[best]),
            "mse_constant": pre.ridge.mse_constant(),
        }
    for label, policy in policies:
        if policy != "uniform" and cut > 0:
            train_policy(policy, lf, cut, rows=st.chunk_rows)
            say(f"{label}: warm-started on the first {cut} rows")
    names = ("logged", *wanted)
    estimates: list[Estimate] = []
    overlap: dict[str, dict[str, float]] = {}
    behaviour = None
    for label, policy in policies:

        def terms(i: int, chunk: BanditLog, policy: Any = policy, label: str = label) -> OPESums:
            test = split.test(i, chunk)
            out = OPESums(names, st.n_boot)
            if test.n == 0:
                return out
            if policy == "uniform":
                target = uniform_target(test, seed=st.seed)
            else:
                target = policy_target(
                    policy, test, draws=st.draws, seed=st.seed, learn=st.learn, name=label
                )
            q_logged = q_target = None
            if models:
                q_logged, q_target = _q_terms(test, target, models, st.folds, st.seed)
            r, p = test.logged_reward, test.logged_propensity
            match = (target.choice == test.action).astype(np.float64)
            t = OPETerms(r, p, target.logged, q_logged, q_target, match)
            num, den = t.matrix(names)
            out.add_rows(num, den, t.weights)
            add_poisson_sums(row_keys(test.event_id, st.seed), num, den, out.boot_num, out.boot_den)
            return out

        sums: OPESums | None = runner.reduce(terms, f"pi({label})")
        if sums is None:
            sums = OPESums(names, st.n_boot)
        values = sums.values()
        lo, hi = sums.intervals(st.alpha)
        for e, name in enumerate(names):
            rows = int(sums.nonzero[e]) if name == "replay" else sums.n
            est = Estimate(
                label, name, float(values[e]), float(lo[e]), float(hi[e]), rows, st.n_boot,
                st.alpha, _note(name, False),
            )  # fmt: skip
            if name == "logged":
                if behaviour is None:
                    behaviour = Estimate(
                        "logged policy", "on-policy", est.value, est.ci_low, est.ci_high,
                        est.n, est.n_boot, est.alpha,
                    )  # fmt: skip
                continue
            estimates.append(est)
        overlap[label] = sums.diagnostics()
        say(f"{label}: done")
    return StreamResult(
        runner_total(runner, counts), complete, cut, pre.n, uniform, estimates, behaviour,
        overlap, fit_summary,
    )  # fmt: skip


def runner_total(runner: Runner, counts: Sequence[int]) -> int:
    total = getattr(runner, "total", None)
    return int(total) if total is not None else int(sum(counts))
