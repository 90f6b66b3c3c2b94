"""Evaluating the settings of a grid on one log, ranking them, recommending one.

Each setting gets two kinds of estimate:

- off-policy (IPS, SNIPS, DM, DR with the logged propensities): the setting
  is warm-started on the first ``train_frac`` of the log and scored on the
  rest, frozen (``mode="fixed"``) or learning from each evaluation row's
  logged events after scoring it (``mode="progressive"``, the default: the
  engine keeps learning too). Every setting is scored on the same rows with
  the same seed, and every bootstrap resample is the same set of rows for
  every setting, so the difference between two settings has a paired
  interval of its own;
- replay (Li, Chu, Langford and Wang 2011), on uniformly logged traffic only:
  the setting starts from its prior, walks the whole log, and earns (and
  learns from) the events whose logged arm it would have chosen. Unlike the
  off-policy estimates, replay credits what exploration teaches a policy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bandit_engine import InvalidArgument
from bandit_engine.policies import FloatArray
from simulators import estimators as est
from simulators.logs import BanditLog
from simulators.replay import policy_for_log, replay
from simulators.tune.grid import Setting

__all__ = [
    "OPE",
    "Recommendation",
    "SettingResult",
    "TuneOptions",
    "TuneResult",
    "recommend",
    "run_tune",
]

#: Off-policy estimators computed for every setting.
OPE = ("ips", "snips", "dm", "dr")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TuneOptions:
    estimator: str = "snips"
    mode: str = "progressive"
    train_frac: float = 0.5
    draws: int = 300
    n_boot: int = 1000
    alpha: float = 0.05
    seed: int = 0
    folds: int = 2
    ridge: float | None = None

    def check(self, uniform: bool) -> None:
        if self.estimator not in (*OPE, "replay"):
            raise InvalidArgument(
                f"--estimator {self.estimator!r} unknown; expected one of {(*OPE, 'replay')}"
            )
        if self.estimator == "replay" and not uniform:
            raise InvalidArgument(
                "--estimator replay needs a uniformly logged experiment (first-slot propensity "
                "= 1 / candidates); this log is not: rank by snips, ips or dr"
            )
        if self.mode not in ("fixed", "progressive"):
            raise InvalidArgument(f"--mode {self.mode!r} must be fixed or progressive")
        if not 0.0 <= self.train_frac < 1.0:
            raise InvalidArgument(f"--train-frac {self.train_frac!r} must be in [0, 1)")
        if self.draws < 1:
            raise InvalidArgument(f"--draws {self.draws!r} must be >= 1")
        if self.n_boot < 1:
            raise InvalidArgument(f"--n-boot {self.n_boot!r} must be >= 1")
        if not 0.0 < self.alpha < 1.0:
            raise InvalidArgument(f"--alpha {self.alpha!r} must be in (0, 1)")


@dataclass(frozen=True)
class SettingResult:
    setting: Setting
    estimates: dict[str, est.Estimate]
    boots: dict[str, FloatArray]  # off-policy resample values, paired across settings
    overlap: dict[str, float]
    accepted: int | None  # replay: events accepted
    seconds: float

    def value(self, name: str) -> float:
        e = self.estimates.get(name)
        return math.nan if e is None else e.value


@dataclass(frozen=True)
class Recommendation:
    best: SettingResult
    current: SettingResult
    estimator: str
    verdict: str  # current | better | likely better | not distinguishable
    difference: tuple[float, float, float] | None  # paired: value, ci_low, ci_high
    notes: tuple[str, ...]
    sentence: str


@dataclass(frozen=True)
class TuneResult:
    baseline: est.Estimate
    results: list[SettingResult]  # ranked, best first
    recommendation: Recommendation
    n_train: int
    n_eval: int
    uniform: bool


def _baseline(test: BanditLog, opts: TuneOptions) -> est.Estimate:
    p = test.logged_propensity
    (e,) = est.estimate(
        est.OPETerms(test.logged_reward, p, p),
        ["logged"],
        policy="logged policy",
        n_boot=opts.n_boot,
        alpha=opts.alpha,
        seed=opts.seed,
    )
    return est.Estimate(e.policy, "on-policy", e.value, e.ci_low, e.ci_high, e.n, e.n_boot, e.alpha)


def _interval(boots: FloatArray, alpha: float) -> tuple[float, float]:
    ok = boots[~np.isnan(boots)]
    if not ok.shape[0]:
        return math.nan, math.nan
    lo, hi = np.quantile(ok, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def evaluate_setting(
    log: BanditLog,
    train: BanditLog | None,
    test: BanditLog,
    setting: Setting,
    opts: TuneOptions,
    *,
    uniform: bool,
    progress: Progress | None = None,
) -> SettingResult:
    """Off-policy estimates of one setting on ``test`` (and replay on ``log`` if uniform)."""
    t0 = time.monotonic()
    label = setting.label(with_kind=True)
    policy = policy_for_log(log, setting.kind, setting.params)
    if train is not None and train.n:
        arms, xs, rewards = train.training_events()
        if arms.shape[0]:
            policy.update_batch(arms, xs, rewards)
    target = est.policy_target(
        policy,
        test,
        draws=opts.draws,
        seed=opts.seed,
        learn=opts.mode == "progressive",
        name=label,
        progress=progress,
    )
    terms = est.OPETerms.build(
        test, target, reward_model=True, folds=opts.folds, lam=opts.ridge, seed=opts.seed
    )
    num, den = terms.matrix(OPE)
    boots = est.bootstrap(num, den, n_boot=opts.n_boot, seed=opts.seed)
    estimates: dict[str, est.Estimate] = {}
    paired: dict[str, FloatArray] = {}
    for e, name in enumerate(OPE):
        d = float(den[e].sum())
        value = float(num[e].sum()) / d if d != 0.0 else math.nan
        lo, hi = _interval(boots[e], opts.alpha)
        estimates[name] = est.Estimate(
            label,
            name,
            value,
            lo,
            hi,
            test.n,
            opts.n_boot,
            opts.alpha,
            # tuning ranks settings by their values; the model is not refitted here
            note=est.DM_NOTE_FIXED if name == "dm" else "",
        )
        paired[name] = boots[e]
    accepted = None
    if uniform:
        fresh = policy_for_log(log, setting.kind, setting.params)
        res = replay(fresh, log, seed=opts.seed, learn=True)
        r = res.estimate(n_boot=opts.n_boot, alpha=opts.alpha, seed=opts.seed)
        estimates["replay"] = est.Estimate(
            label, "replay", r.value, r.ci_low, r.ci_high, r.n, r.n_boot, r.alpha
        )
        accepted = res.n_matched
    return SettingResult(
        setting, estimates, paired, terms.diagnostics(), accepted, time.monotonic() - t0
    )


def run_tune(
    log: BanditLog,
    settings: list[Setting],
    opts: TuneOptions,
    grids: Mapping[str, Mapping[str, tuple[Any, ...]]],
    *,
    note: Callable[[str], None] | None = None,
    progress: Callable[[str], Progress | None] | None = None,
) -> TuneResult:
    """Evaluate every setting (the current one is ``settings[0]``) and recommend one."""
    full = log.complete()
    if full.n < 2:
        raise InvalidArgument(f"the log has {full.n} rows with rewards; tuning needs more")
    uniform = full.is_uniform()
    opts.check(uniform)
    if opts.train_frac > 0:
        train, test = full.split(opts.train_frac)
    else:
        train, test = None, full
    if test.n < 2:
        raise InvalidArgument(
            f"--train-frac {opts.train_frac} leaves {test.n} rows to evaluate on; lower it"
        )
    results = []
    for i, s in enumerate(settings):
        bar = progress(f"[{i + 1}/{len(settings)}] {s.label(True)}") if progress else None
        r = evaluate_setting(full, train, test, s, opts, uniform=uniform, progress=bar)
        results.append(r)
        if note is not None:
            e = r.estimates[opts.estimator]
            note(
                f"[{i + 1}/{len(settings)}] {s.label(True)}{' (current)' if s.current else ''}: "
                f"{opts.estimator} {e.value:.4g} [{e.ci_low:.4g}, {e.ci_high:.4g}] "
                f"in {r.seconds:.1f}s"
            )

    def rank_key(i: int) -> tuple[bool, float, int]:
        v = results[i].value(opts.estimator)
        return (math.isnan(v), 0.0 if math.isnan(v) else -v, i)

    ranked = [results[i] for i in sorted(range(len(results)), key=rank_key)]
    rec = recommend(ranked, results[0], opts, grids)
    n_train = 0 if train is None else train.n
    return TuneResult(_baseline(test, opts), ranked, rec, n_train, test.n, uniform)


def _g(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.3g}"


def recommend(
    ranked: list[SettingResult],
    current: SettingResult,
    opts: TuneOptions,
    grids: Mapping[str, Mapping[str, tuple[Any, ...]]],
) -> Recommendation:
    """The best setting by ``opts.estimator``, judged against the current one.

    better: the two intervals do not overlap; likely better: they overlap but
    the paired interval of the difference (same rows, same resamples;
    off-policy estimators only) excludes zero; otherwise the best is not
    distinguishable from the current setting, which is then kept.
    """
    name = opts.estimator
    best = ranked[0]
    multi = len({r.setting.kind for r in ranked}) > 1
    b, c = best.estimates[name], current.estimates[name]
    lb = best.setting.label(multi)
    lc = current.setting.label(multi)
    diff = None
    if name in best.boots and best is not current:
        d = best.boots[name] - current.boots[name]
        lo, hi = _interval(d, opts.alpha)
        diff = (b.value - c.value, lo, hi)
    if best is current:
        verdict = "current"
        sentence = (
            f"the current setting ({lc}) ranks first by {name}: "
            f"{_g(c.value)} [{_g(c.ci_low)}, {_g(c.ci_high)}]: keep it"
        )
    else:
        head = (
            f"{lb}: {_g(b.value)} [{_g(b.ci_low)}, {_g(b.ci_high)}] vs current "
            f"{_g(c.value)} [{_g(c.ci_low)}, {_g(c.ci_high)}]"
        )
        if b.ci_low > c.ci_high:
            verdict, sentence = "better", f"{head}: better"
        elif diff is not None and diff[1] > 0:
            verdict = "likely better"
            sentence = (
                f"{head}: the intervals overlap, but the paired difference "
                f"{diff[0]:+.3g} [{diff[1]:+.3g}, {diff[2]:+.3g}] on the same rows excludes 0: "
                "likely better"
            )
        else:
            verdict = "not distinguishable"
            sentence = f"{head}: not distinguishable from the current setting: keep it"
    notes = []
    for param, values in grids.get(best.setting.kind, {}).items():
        nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        v = best.setting.params.get(param)
        if len(nums) < 3 or v is None or verdict in ("current", "not distinguishable"):
            continue
        if v == min(nums) or v == max(nums):
            side = "smallest" if v == min(nums) else "largest"
            notes.append(f"{param}={v:g} is the {side} value of the grid: extend the grid past it")
    return Recommendation(best, current, name, verdict, diff, tuple(notes), sentence)
