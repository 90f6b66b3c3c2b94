"""``SupervisedWorld``: a labelled dataset as a bandit (arms are classes)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from bandit_engine import Context, FeatureSpace, InvalidArgument
from bandit_engine.policies import FloatArray, IntArray
from simulators._simkernels import reward_uniforms
from simulators.worlds.base import Round, World, WorldArm

__all__ = ["SKLEARN_DATASETS", "SupervisedWorld", "make_labelled", "sklearn_dataset"]


def make_labelled(
    rng: np.random.Generator,
    n_samples: int = 2000,
    n_features: int = 8,
    n_classes: int = 5,
    separation: float = 1.5,
) -> tuple[FloatArray, IntArray]:
    """A synthetic labelled dataset: Gaussian classes around random centres.

    ``X = centre[y] + N(0, I)`` with centres ~ N(0, separation^2 I) and
    balanced random labels; larger ``separation`` makes the classes easier
    to tell apart (and a linear policy's job easier).
    """
    for nm, v, lo in (("n_samples", n_samples, 1), ("n_features", n_features, 1),
                      ("n_classes", n_classes, 2)):  # fmt: skip
        if not isinstance(v, int) or v < lo:
            raise InvalidArgument(f"{nm}={v!r} must be an integer >= {lo}")
    centres = rng.normal(0.0, separation, (n_classes, n_features))
    y = rng.integers(0, n_classes, n_samples).astype(np.int64)
    x = centres[y] + rng.standard_normal((n_samples, n_features))
    return x, y


SKLEARN_DATASETS = ("iris", "wine", "digits", "breast_cancer")


def sklearn_dataset(name: str) -> tuple[FloatArray, IntArray]:
    """(X, y) of one of scikit-learn's bundled datasets (needs scikit-learn installed)."""
    if name not in SKLEARN_DATASETS:
        raise InvalidArgument(f"dataset {name!r} unknown; expected one of {SKLEARN_DATASETS}")
    try:
        from sklearn import datasets
    except ImportError as exc:
        raise InvalidArgument(
            f"dataset {name!r} needs scikit-learn (pip install scikit-learn), or pass X and y"
        ) from exc
    bunch = getattr(datasets, f"load_{name}")()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


class SupervisedWorld(World):
    """A labelled dataset as a bandit (supervised-to-bandit conversion).

    Arms are the classes; each round shows one row of ``X`` (sampled with
    replacement) as a dense context, and an arm pays 1 exactly when it is
    the row's label. Give ``X`` and ``y`` directly, or ``dataset``: one of
    ``"synthetic"`` (``make_labelled``) or scikit-learn's bundled
    ``iris``, ``wine``, ``digits``, ``breast_cancer`` when it is installed.
    Features are standardised (zero mean, unit variance per column) unless
    ``standardise`` is False. The model context is intercept + the row
    (``dim = 1 + n_features``, all dense).
    """

    name = "supervised"

    def __init__(
        self,
        rng: np.random.Generator,
        *,
        X: npt.ArrayLike | None = None,
        y: npt.ArrayLike | None = None,
        dataset: str = "synthetic",
        n_samples: int = 2000,
        n_features: int = 8,
        n_classes: int = 5,
        separation: float = 1.5,
        standardise: bool = True,
    ) -> None:
        if (X is None) != (y is None):
            raise InvalidArgument("give both X and y, or neither")
        if X is None:
            if dataset == "synthetic":
                xs, ys = make_labelled(rng, n_samples, n_features, n_classes, separation)
                self._desc: dict[str, Any] = {
                    "dataset": "synthetic", "n_samples": n_samples, "n_features": n_features,
                    "n_classes": n_classes, "separation": separation,
                }  # fmt: skip
            else:
                xs, ys = sklearn_dataset(dataset)
                self._desc = {"dataset": dataset}
        else:
            xs = np.asarray(X, dtype=np.float64)
            ys = np.asarray(y)
            self._desc = {"dataset": "custom"}
        if xs.ndim != 2 or xs.shape[0] < 1 or xs.shape[1] < 1:
            raise InvalidArgument(f"X has shape {xs.shape}; expected (n_samples, n_features)")
        if ys.shape != (xs.shape[0],):
            raise InvalidArgument(f"y has shape {ys.shape}; expected ({xs.shape[0]},)")
        if not np.all(np.isfinite(xs)):
            raise InvalidArgument("X has non-finite values")
        classes, labels = np.unique(ys, return_inverse=True)
        if classes.shape[0] < 2:
            raise InvalidArgument(f"y has {classes.shape[0]} class; a bandit needs at least 2")
        if standardise:
            sd = xs.std(axis=0)
            xs = (xs - xs.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        self.X = xs
        self.y = labels.astype(np.int64)
        self.classes = classes
        self._desc.update(
            n_samples=int(xs.shape[0]), n_features=int(xs.shape[1]),
            n_classes=int(classes.shape[0]), standardise=bool(standardise),
        )  # fmt: skip
        p = xs.shape[1]
        self.space = FeatureSpace(1 + p, dense_dim=p)
        self._arms = [WorldArm(f"class-{c}") for c in classes.tolist()]
        self._all = np.arange(classes.shape[0], dtype=np.int64)
        self._onehot = np.eye(classes.shape[0])
        self._exam = np.ones(classes.shape[0])
        self._draw_stream_seed(rng)

    def _draw_chunk(self, rng: np.random.Generator, size: int) -> Any:
        return rng.integers(0, self.X.shape[0], size)

    def _round(self, t: int, chunk: Any, i: int, key: int) -> Round:
        row = int(chunk[i])
        dense = self.X[row]
        x = np.empty(self.space.dim)
        x[0] = 1.0
        x[1:] = dense
        return Round(
            t, Context(dense=tuple(dense.tolist())), x, self._all, self._onehot[self.y[row]],
            self._exam, tuple(range(self._all.shape[0])) if t == 0 else (),
            reward_uniforms(key, t, self._all),
        )  # fmt: skip

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self._desc}
