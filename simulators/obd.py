"""The Open Bandit Dataset sample: fetch it, load it, turn it into a ``BanditLog``.

The Open Bandit Dataset (Saito et al. 2021; ZOZOTOWN fashion e-commerce,
CC BY 4.0) ships a 10,000-round sample per behaviour policy (``random``:
uniform; ``bts``: Bernoulli Thompson sampling) and campaign (``all``: 80
items, ``men``: 34, ``women``: 46) inside the ``obp`` distribution on PyPI.
The project does not depend on ``obp``: ``fetch`` downloads the release with
pip and unpacks ``obp/dataset/obd/`` only::

    python -m simulators.obd fetch data/      # -> data/obd/{random,bts}/{all,men,women}/
    python -m simulators.obd info             # rows, items, clicks per file

Each row is one impression: ``item_id`` shown at ``position`` (1-3 in the
files, 0-2 here), ``click``, the behaviour policy's ``propensity_score`` of
that item at that position, four hashed categorical user features and one
user-item affinity per item. ``item_context.csv`` gives each item one numeric
and three hashed categorical features.

Context vectors use ``bandit_engine.features.FeatureSpace`` with the same
feature names a caller of ``Recommend`` would send: categoricals
``user_feature_0=<hash>`` and ``position=<p>``, numerics
``user-item_affinity_<item>`` (hashed, or copied into the dense block with
``affinity="dense"``). Item features become each arm's ``ArmFeatures`` for
the shared model.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt

from bandit_engine import FeatureSpace, InvalidArgument
from simulators.logs import BanditLog

__all__ = [
    "BEHAVIORS",
    "CAMPAIGNS",
    "OBP_VERSION",
    "OBDRounds",
    "available",
    "default_dir",
    "fetch",
    "load",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

BEHAVIORS = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
N_ITEMS = {"all": 80, "men": 34, "women": 46}
OBP_VERSION = "0.5.7"
_MEMBER_ROOT = ("obp", "dataset", "obd")
_REPO_ROOT = Path(__file__).resolve().parents[1]


def default_dir() -> Path:
    """``$BANDIT_OBD_DIR``, else ``data/obd`` in the working directory if it
    exists, else ``data/obd`` under the repository root."""
    env = os.environ.get("BANDIT_OBD_DIR")
    if env:
        return Path(env)
    here = Path("data") / "obd"
    return here if here.is_dir() else _REPO_ROOT / "data" / "obd"


def csv_path(data_dir: Path, behavior: str, campaign: str) -> Path:
    return data_dir / behavior / campaign / f"{campaign}.csv"


def available(data_dir: str | Path | None = None) -> bool:
    """Whether all six logs and their item contexts are present."""
    d = Path(data_dir) if data_dir is not None else default_dir()
    return all(
        csv_path(d, b, c).is_file() and (d / b / c / "item_context.csv").is_file()
        for b in BEHAVIORS
        for c in CAMPAIGNS
    )


# -------------------------------------------------------------------- fetch
def fetch(dest: str | Path = "data", *, version: str = OBP_VERSION, force: bool = False) -> Path:
    """Download ``obp==version`` with pip into ``dest`` and unpack the sample
    into ``dest/obd``; returns that directory. Does nothing if it is complete.

    obp 0.5.x is published as an sdist only and declares Python < 3.11, hence
    ``--ignore-requires-python``; pip still builds its metadata (setuptools),
    nothing of obp is installed or imported.
    """
    dest = Path(dest)
    out = dest / "obd"
    if available(out) and not force:
        log.info("OBD sample already in %s", out)
        return out
    dest.mkdir(parents=True, exist_ok=True)
    archive = _find_archive(dest, version)
    if archive is None:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--ignore-requires-python",
            "--disable-pip-version-check",
            f"obp=={version}",
            "-d",
            str(dest),
        ]
        log.info("running %s", " ".join(cmd))
        subprocess.run(cmd, check=True)
        archive = _find_archive(dest, version)
        if archive is None:
            raise RuntimeError(f"pip download left no obp-{version} archive in {dest}")
    n = _extract(archive, out)
    if not available(out):
        raise RuntimeError(f"{archive} did not contain the full OBD sample ({n} files extracted)")
    log.info("extracted %d files from %s into %s", n, archive.name, out)
    return out


def _find_archive(dest: Path, version: str) -> Path | None:
    for pattern in (f"obp-{version}-*.whl", f"obp-{version}.tar.gz", f"obp-{version}.zip"):
        hits = sorted(dest.glob(pattern))
        if hits:
            return hits[0]
    return None


def _member_target(name: str, out: Path) -> Path | None:
    """Where an archive member under ``obp/dataset/obd/`` goes (None: skip it)."""
    parts = PurePosixPath(name).parts
    for i in range(len(parts) - len(_MEMBER_ROOT)):
        if parts[i : i + len(_MEMBER_ROOT)] == _MEMBER_ROOT:
            rest = parts[i + len(_MEMBER_ROOT) :]
            if not rest or any(p in ("", ".", "..") for p in rest):
                return None
            return out.joinpath(*rest)
    return None


def _extract(archive: Path, out: Path) -> int:
    n = 0
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                target = _member_target(info.filename, out)
                if target is None or info.is_dir():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(info))
                n += 1
    else:
        with tarfile.open(archive, "r:*") as t:
            for member in t.getmembers():
                target = _member_target(member.name, out)
                if target is None or not member.isfile():
                    continue
                src = t.extractfile(member)
                assert src is not None
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(src.read())
                n += 1
    return n


# --------------------------------------------------------------------- load
@dataclass(frozen=True, eq=False)
class OBDRounds:
    """One OBD log (behaviour policy x campaign) as arrays, plus item features."""

    behavior: str
    campaign: str
    timestamp: FloatArray  # (n,) seconds since the epoch
    item: IntArray  # (n,) item id 0..K-1
    position: IntArray  # (n,) 0-based slot
    click: FloatArray  # (n,) 0/1
    pscore: FloatArray  # (n,) P(item at this position | behaviour policy)
    user_features: npt.NDArray[np.str_]  # (n, 4) hashed categoricals
    affinity: FloatArray  # (n, K) user-item affinities
    item_numeric: FloatArray  # (K, 1) item_feature_0
    item_categorical: npt.NDArray[np.str_]  # (K, 3) item_feature_1..3

    @property
    def n(self) -> int:
        return int(self.item.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_numeric.shape[0])

    @property
    def name(self) -> str:
        return f"{self.behavior}/{self.campaign}"

    def feature_space(self, dim: int = 32, *, affinity: str = "hashed") -> FeatureSpace:
        dense = self.n_items if affinity == "dense" else 0
        return FeatureSpace(dim, dense_dim=dense, intercept=True)

    def contexts(
        self, dim: int = 32, *, affinity: str = "hashed", position: bool = True
    ) -> FloatArray:
        """One context vector per round (see the module docstring).

        ``affinity``: ``"hashed"`` (named numeric features, zeros skipped),
        ``"dense"`` (the K affinities as the dense block; needs dim > K) or
        ``"none"``. ``position``: add the slot as a categorical feature.
        """
        if affinity not in ("hashed", "dense", "none"):
            raise InvalidArgument(f"affinity={affinity!r} must be 'hashed', 'dense' or 'none'")
        space = self.feature_space(dim, affinity=affinity)
        names = [f"user-item_affinity_{j}" for j in range(self.n_items)]
        out = np.empty((self.n, dim))
        uf = self.user_features
        for i in range(self.n):
            cats = [f"user_feature_{c}={uf[i, c]}" for c in range(uf.shape[1])]
            if position:
                cats.append(f"position={int(self.position[i]) + 1}")
            row = self.affinity[i]
            if affinity == "dense":
                out[i] = space.vector(dense=row, categorical=cats)
            elif affinity == "hashed":
                nz = np.flatnonzero(row)
                out[i] = space.vector(
                    numeric={names[j]: float(row[j]) for j in nz}, categorical=cats
                )
            else:
                out[i] = space.vector(categorical=cats)
        return out

    def arm_features(self) -> tuple[dict[str, Any], ...]:
        """Each item's features in the engine's arm-feature form."""
        return tuple(
            {
                "numeric": {"item_feature_0": float(self.item_numeric[j, 0])},
                "categorical": [
                    f"item_feature_{c + 1}={self.item_categorical[j, c]}"
                    for c in range(self.item_categorical.shape[1])
                ],
            }
            for j in range(self.n_items)
        )

    def to_log(
        self, dim: int = 32, *, affinity: str = "hashed", position: bool = True
    ) -> BanditLog:
        """The rounds as a ``BanditLog``: one row per impression, every item a candidate."""
        return BanditLog(
            arm_ids=tuple(str(j) for j in range(self.n_items)),
            x=self.contexts(dim, affinity=affinity, position=position),
            shown=self.item[:, None].copy(),
            propensity=self.pscore[:, None].copy(),
            reward=self.click[:, None].copy(),
            event_id=tuple(f"obd/{self.name}/{i}" for i in range(self.n)),
            timestamp=self.timestamp.copy(),
            position=self.position.copy(),
            arm_features=self.arm_features(),
            meta={
                "source": f"obd:{self.name}",
                "behavior": self.behavior,
                "campaign": self.campaign,
                "features": {"dim": dim, "affinity": affinity, "position": position},
            },
        )

    def summary(self) -> dict[str, Any]:
        return {
            "log": self.name,
            "rounds": self.n,
            "items": self.n_items,
            "clicks": int(self.click.sum()),
            "ctr": float(self.click.mean()),
            "positions": int(self.position.max()) + 1,
            "pscore_min": float(self.pscore.min()),
            "pscore_max": float(self.pscore.max()),
            "uniform": bool(np.allclose(self.pscore, 1.0 / self.n_items)),
            "first": _utc(self.timestamp.min()),
            "last": _utc(self.timestamp.max()),
        }


def _utc(t: float) -> str:
    return datetime.fromtimestamp(float(t), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _check(behavior: str, campaign: str) -> None:
    if behavior not in BEHAVIORS:
        raise InvalidArgument(f"behavior={behavior!r} must be one of {BEHAVIORS}")
    if campaign not in CAMPAIGNS:
        raise InvalidArgument(f"campaign={campaign!r} must be one of {CAMPAIGNS}")


def parse_spec(spec: str) -> tuple[str, str]:
    """``"random/all"`` -> ("random", "all")."""
    behavior, _, campaign = spec.partition("/")
    _check(behavior, campaign or "all")
    return behavior, campaign or "all"


def load(
    behavior: str = "random", campaign: str = "all", data_dir: str | Path | None = None
) -> OBDRounds:
    """Read one OBD log and its item features (csv + numpy, no pandas)."""
    _check(behavior, campaign)
    d = Path(data_dir) if data_dir is not None else default_dir()
    path = csv_path(d, behavior, campaign)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: fetch the sample first (make data, or "
            f"python -m simulators.obd fetch data/)"
        )
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        head = next(reader)
        col = {name: i for i, name in enumerate(head)}
        rows = list(reader)
    aff_cols = sorted(
        (int(h.rsplit("_", 1)[1]), i) for h, i in col.items() if h.startswith("user-item_affinity_")
    )
    uf_cols = sorted(
        (int(h.rsplit("_", 1)[1]), i) for h, i in col.items() if h.startswith("user_feature_")
    )
    n = len(rows)
    ts = np.empty(n)
    item = np.empty(n, dtype=np.int64)
    pos = np.empty(n, dtype=np.int64)
    click = np.empty(n)
    ps = np.empty(n)
    uf = np.empty((n, len(uf_cols)), dtype=object)
    aff = np.empty((n, len(aff_cols)))
    ci, cp, cc, cs, ct = (
        col[c] for c in ("item_id", "position", "click", "propensity_score", "timestamp")
    )
    aff_idx = [i for _, i in aff_cols]
    uf_idx = [i for _, i in uf_cols]
    for r, row in enumerate(rows):
        ts[r] = datetime.fromisoformat(row[ct]).timestamp()
        item[r] = int(row[ci])
        pos[r] = int(row[cp]) - 1
        click[r] = float(row[cc])
        ps[r] = float(row[cs])
        uf[r] = [row[i] for i in uf_idx]
        aff[r] = [float(row[i]) for i in aff_idx]
    k = _read_items(d / behavior / campaign / "item_context.csv")
    if aff.shape[1] != k[0].shape[0]:
        raise InvalidArgument(
            f"{path}: {aff.shape[1]} affinity columns but {k[0].shape[0]} items in item_context.csv"
        )
    return OBDRounds(behavior, campaign, ts, item, pos, click, ps, uf.astype(str), aff, k[0], k[1])


def _read_items(path: Path) -> tuple[FloatArray, npt.NDArray[np.str_]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        head = next(reader)
        rows = list(reader)
    col = {name: i for i, name in enumerate(head)}
    rows.sort(key=lambda r: int(r[col["item_id"]]))
    ids = [int(r[col["item_id"]]) for r in rows]
    if ids != list(range(len(ids))):
        raise InvalidArgument(f"{path}: item ids are not 0..{len(ids) - 1}")
    numeric = np.array([[float(r[col["item_feature_0"]])] for r in rows])
    cats = np.array([[r[col[f"item_feature_{c}"]] for c in (1, 2, 3)] for r in rows], dtype=str)
    return numeric, cats


# ---------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.obd", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download obp with pip and unpack the sample")
    f.add_argument("dest", nargs="?", default="data", help="directory (sample goes to DEST/obd)")
    f.add_argument("--version", default=OBP_VERSION)
    f.add_argument("--force", action="store_true", help="unpack again even if present")
    i = sub.add_parser("info", help="summarise the six logs")
    i.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.cmd == "fetch":
        out = fetch(args.dest, version=args.version, force=args.force)
        print(out)
        return 0
    return info(args.data_dir)


def info(data_dir: str | Path | None = None) -> int:
    d = Path(data_dir) if data_dir is not None else default_dir()
    if not available(d):
        print(f"no OBD sample in {d}; run: make data", file=sys.stderr)
        return 1
    cols = ("log", "rounds", "items", "clicks", "ctr", "pscore_min", "pscore_max", "uniform")
    rows = [load(b, c, d).summary() for b in BEHAVIORS for c in CAMPAIGNS]
    from simulators.offline_cli import format_table

    print(format_table(cols, [[r[c] for c in cols] for r in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
