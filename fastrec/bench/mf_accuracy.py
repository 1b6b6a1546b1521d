"""MovieLens 100K accuracy of MatrixFactorization on the GroupLens splits u1..u5.

``python -m fastrec.bench mf --accuracy [--data PATH]`` (or ``python -m
fastrec.bench.mf_accuracy``) rebuilds the five splits from ``u.data``
(``uK.test`` is rows ``20000*(K-1)+1 .. 20000*K`` in file order, ``uK.base`` the
rest) and reports the mean test RMSE of

* fastrec with its defaults;
* fastrec and Surprise's SVD with Surprise's settings (100 factors, 20 epochs,
  lr 0.005, reg 0.02, init_std 0.1), when Surprise is installed.

The data is looked up in ``--data``, ``$FASTREC_DATA`` or ``../shared/data`` and
``shared/data`` relative to the working directory; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastrec.bench._common import find_ml100k, format_table, machine_summary

# Surprise's SVD defaults, in fastrec's names (Surprise uses one lr and one reg for all).
SURPRISE_SETTINGS = {
    "n_factors": 100,
    "n_epochs": 20,
    "lr": 0.005,
    "reg": 0.02,
    "lr_bias": 0.005,
    "reg_bias": 0.02,
    "init_std": 0.1,
}


def load_ml100k(path: Path) -> np.ndarray:
    """(100000, 3) int64 array of user, item, rating in file order."""
    table = np.loadtxt(path, dtype=np.int64, delimiter="\t", usecols=(0, 1, 2))
    if table.shape != (100_000, 3):
        raise ValueError(f"{path} does not look like MovieLens 100K u.data (shape {table.shape}).")
    return table


def splits(table: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The GroupLens u1..u5 (base, test) pairs."""
    out = []
    for k in range(5):
        test = np.zeros(table.shape[0], dtype=bool)
        test[20_000 * k : 20_000 * (k + 1)] = True
        out.append((table[~test], table[test]))
    return out


def rmse_fastrec(folds: list[tuple[np.ndarray, np.ndarray]], **params: Any) -> tuple[float, float]:
    """Mean test RMSE over the folds and mean fit seconds of fastrec with ``params``."""
    from fastrec import MatrixFactorization

    errors, seconds = [], []
    for base, test in folds:
        model = MatrixFactorization(**params)
        start = time.perf_counter()
        model.fit((base[:, 0], base[:, 1], base[:, 2]))
        seconds.append(time.perf_counter() - start)
        pred = model.predict(test[:, 0], test[:, 1]).astype(np.float64)
        errors.append(float(np.sqrt(np.mean((pred - test[:, 2]) ** 2))))
    return float(np.mean(errors)), float(np.mean(seconds))


def rmse_surprise(folds: list[tuple[np.ndarray, np.ndarray]], **params: Any) -> tuple[float, float] | None:
    """The same for Surprise's SVD (``params`` in fastrec's names), or None without Surprise."""
    try:
        import pandas as pd
        from surprise import SVD, Dataset, Reader
    except ImportError:
        return None
    errors, seconds = [], []
    for base, test in folds:
        frame = pd.DataFrame(base, columns=["user", "item", "rating"])
        trainset = Dataset.load_from_df(frame, Reader(rating_scale=(1, 5))).build_full_trainset()
        algo = SVD(
            n_factors=params["n_factors"],
            n_epochs=params["n_epochs"],
            lr_all=params["lr"],
            reg_all=params["reg"],
            init_std_dev=params["init_std"],
            random_state=params.get("random_state", 0),
        )
        start = time.perf_counter()
        algo.fit(trainset)
        seconds.append(time.perf_counter() - start)
        pred = np.array([algo.predict(u, i).est for u, i in test[:, :2]])
        errors.append(float(np.sqrt(np.mean((pred - test[:, 2]) ** 2))))
    return float(np.mean(errors)), float(np.mean(seconds))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastrec.bench mf --accuracy", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--data", help="folder holding ml-100k/u.data (default: ../shared/data)")
    parser.add_argument("--threads", type=int, default=None, help="fastrec threads (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-peers", action="store_true", help="skip Surprise")
    args = parser.parse_args(argv)
    path = find_ml100k(args.data)
    if path is None:
        print("MovieLens 100K (ml-100k/u.data) not found; pass --data PATH. Skipping.")
        return 0
    folds = splits(load_ml100k(path))
    print(f"# MF accuracy on MovieLens 100K, GroupLens splits u1..u5 ({path})")
    print(machine_summary())
    rows = []
    common = {"random_state": args.seed, "n_threads": args.threads}
    err, sec = rmse_fastrec(folds, **common)
    rows.append(["fastrec defaults", f"{err:.4f}", f"{sec:.3f}"])
    err, sec = rmse_fastrec(folds, **SURPRISE_SETTINGS, **common)
    rows.append(["fastrec, Surprise's settings", f"{err:.4f}", f"{sec:.3f}"])
    if not args.no_peers:
        result = rmse_surprise(folds, **SURPRISE_SETTINGS, random_state=args.seed)
        if result is None:
            rows.append(["Surprise SVD (not installed)", "-", "-"])
        else:
            rows.append(["Surprise SVD, its settings", f"{result[0]:.4f}", f"{result[1]:.3f}"])
    print(format_table(["model", "mean test RMSE (u1..u5)", "mean fit s"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
