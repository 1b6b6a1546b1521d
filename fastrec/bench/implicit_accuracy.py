"""Ranking accuracy of ALS, BPR and WARP on real behaviour data, beside implicit and LightFM.

``fastrec bench implicit --accuracy [--data PATH]`` (or ``python -m
fastrec.bench.implicit_accuracy``) reads, from local files only:

* Last.fm (HetRec 2011, ``hetrec2011-lastfm-2k/user_artists.dat``): every
  (user, artist) pair is a positive, its play count the value (ALS's confidence);
* MovieLens 100K (``ml-100k/u.data``) and latest-small
  (``ml-latest-small/ratings.csv``): ratings >= 4 are the positives, stored as 1.

Each dataset gets one seeded leave-k-out split (``--leave-out`` positives of
every user with more than that many go to test;
:func:`fastrec.datasets.train_test_split`), shared by every contender, and a
validation split carved from its training part the same way (another seed).
Every contender is scored on the test part with ``fastrec.metrics`` at 10:
precision, recall, NDCG and MAP of its top-10 lists (training items excluded),
means over the test users.

Contenders, all with ``--factors`` factors: fastrec ``ALS``, ``BPR`` and ``WARP``
(a model this installation lacks is listed as not available), implicit's CPU
``AlternatingLeastSquares`` (conjugate gradient) and
``BayesianPersonalizedRanking``, and LightFM with the WARP and BPR losses (30
epochs: LightFM's ``fit`` defaults to one).  Each runs at its own defaults, then
with the best setting of a small grid (:data:`GRIDS`: the same learning rates
and the same number of settings for every library of a model, each library's
regularisation and ALS confidence weight on its own scale; implicit's ALS
takes ``alpha * x`` as the confidence, fastrec's ``1 + alpha * x``), chosen by
NDCG@10 on the validation split after a fit on the rest of the training part,
and refitted on the whole training part.

Lock-free SGD fits vary from seed to seed by more than the gaps between some
contenders, so every row is the mean over ``--repeats`` fits whose model seeds
are ``seed, seed + 1, ...`` (the splits and the grid choice stay those of
``seed``), with the standard deviation of its NDCG@10 beside it.

The data is looked up in ``--data`` (a folder holding the dataset folders, or
one dataset's folder), ``$FASTREC_DATA``, ``../shared/data`` and ``shared/data``
relative to the working directory; nothing is downloaded.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec.bench._common import DEFAULT_ML100K, format_table

TOP_N = 10
METRICS = ("precision", "recall", "ndcg", "map")
SELECTION = "ndcg"
LIGHTFM_EPOCHS = 30
# name -> (folder, file inside it that identifies it)
DATASETS = {
    "lastfm": ("hetrec2011-lastfm-2k", "user_artists.dat"),
    "ml-100k": ("ml-100k", "u.data"),
    "ml-latest-small": ("ml-latest-small", "ratings.csv"),
}
POSITIVE_RATING = 4.0
CONTENDERS = (
    "fastrec ALS",
    "implicit ALS",
    "fastrec BPR",
    "implicit BPR",
    "LightFM BPR",
    "fastrec WARP",
    "LightFM WARP",
)
# The grid of every contender: parameter -> values, in the library's own names.
GRIDS: dict[str, dict[str, list[Any]]] = {
    "fastrec ALS": {"alpha": [0.1, 1.0, 10.0], "reg": [0.01, 1.0]},
    "implicit ALS": {"alpha": [0.1, 1.0, 10.0], "regularization": [0.01, 1.0]},
    "fastrec BPR": {"lr": [0.01, 0.05, 0.1], "reg": [0.001, 0.01]},
    "implicit BPR": {"learning_rate": [0.01, 0.05, 0.1], "regularization": [0.001, 0.01]},
    "LightFM BPR": {"learning_rate": [0.01, 0.05, 0.1], "item_alpha": [0.0, 1e-5]},
    "fastrec WARP": {"lr": [0.01, 0.05, 0.1], "reg": [0.0, 1e-5]},
    "LightFM WARP": {"learning_rate": [0.01, 0.05, 0.1], "item_alpha": [0.0, 1e-5]},
}
NOT_AVAILABLE = "not available in this installation"
NOT_INSTALLED = "not installed"


# --- data ---


def find_dataset(name: str, data: str | os.PathLike | None = None) -> Path | None:
    """The folder of dataset ``name`` (a key of :data:`DATASETS`), or None when it is not here.

    ``data`` (a folder holding the dataset's folder, or that folder itself) is the
    only place looked at when given; otherwise ``$FASTREC_DATA``,
    ``../shared/data``, ``shared/data`` and the data folder beside the checkout.
    """
    folder, marker = DATASETS[name]
    if data is not None:
        roots = [Path(data)]
    else:
        roots = [Path(p) for p in (os.environ.get("FASTREC_DATA", ""), "../shared/data", "shared/data") if p]
        roots.append(DEFAULT_ML100K.parent)
    for root in roots:
        for candidate in (root / folder, root):
            if (candidate / marker).is_file():
                return candidate
    return None


def load_positives(name: str, folder: Path) -> tuple[sp.csr_matrix, str]:
    """(users x items CSR of float32 positives, description) of dataset ``name`` in ``folder``.

    Last.fm keeps its play counts as the values; the MovieLens sets keep the
    ratings >= 4, stored as 1.
    """
    from fastrec.datasets import load_lastfm, load_ml100k, load_ml_latest

    loader = {"lastfm": load_lastfm, "ml-100k": load_ml100k, "ml-latest-small": load_ml_latest}[name]
    data = loader(folder)
    X = data.matrix.copy()
    if name == "lastfm":
        what = "play counts as the values"
    else:
        X.data = (X.data >= POSITIVE_RATING).astype(np.float32)
        X.eliminate_zeros()
        what = f"ratings >= {POSITIVE_RATING:g} as positives"
    text = f"{name}: {X.shape[0]:,} users x {X.shape[1]:,} items, {X.nnz:,} positives ({what})"
    return sp.csr_matrix(X), text


def split(X: sp.csr_matrix, leave_out: int, seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(train, test): ``leave_out`` random positives of every user with more than that go to test."""
    from fastrec.datasets import train_test_split

    return train_test_split(X, method="leave_k_out", k=leave_out, seed=seed)


# --- contenders: fit(train, params, factors, threads, seed) -> top-10 table ---


def _fastrec(model: str) -> Callable | None:
    import fastrec

    cls = getattr(fastrec, model, None)
    if cls is None:
        return None

    def fit(train: sp.csr_matrix, params: dict, factors: int, threads: int | None, seed: int) -> np.ndarray:
        fitted = cls(n_factors=factors, random_state=seed, n_threads=threads, **params).fit(train)
        return fitted.recommend(np.arange(train.shape[0]), n=TOP_N)[0]

    return fit


def _top_n(U: np.ndarray, V: np.ndarray, train: sp.csr_matrix, threads: int | None) -> np.ndarray:
    import fastrec

    U = np.ascontiguousarray(U, dtype=np.float32)
    V = np.ascontiguousarray(V, dtype=np.float32)
    return fastrec.topn(U, V, TOP_N, exclude=train, n_threads=threads)[0]


def _implicit(model: str) -> Callable | None:
    try:
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking
    except ImportError:
        return None
    from threadpoolctl import threadpool_limits

    cls = AlternatingLeastSquares if model == "ALS" else BayesianPersonalizedRanking

    def fit(train: sp.csr_matrix, params: dict, factors: int, threads: int | None, seed: int) -> np.ndarray:
        fitted = cls(factors=factors, random_state=seed, num_threads=threads or 0, **params)
        # implicit asks for a single-threaded BLAS: its own threads solve the rows
        with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted.fit(train, show_progress=False)
        return _top_n(fitted.user_factors, fitted.item_factors, train, threads)

    return fit


def _lightfm(loss: str) -> Callable | None:
    try:
        from lightfm import LightFM
    except ImportError:
        return None

    def fit(train: sp.csr_matrix, params: dict, factors: int, threads: int | None, seed: int) -> np.ndarray:
        params = dict(params)
        if "item_alpha" in params:  # one regularisation for both sides
            params.setdefault("user_alpha", params["item_alpha"])
        fitted = LightFM(no_components=factors, loss=loss, random_state=seed, **params)
        positives = train.tocoo()
        positives.data = np.ones_like(positives.data)
        fitted.fit(positives, epochs=LIGHTFM_EPOCHS, num_threads=threads or 1)
        U = np.hstack([fitted.user_embeddings, np.ones((train.shape[0], 1), dtype=np.float32)])
        V = np.hstack([fitted.item_embeddings, fitted.item_biases[:, None]])
        return _top_n(U, V, train, threads)

    return fit


def contender(name: str) -> tuple[Callable | None, str]:
    """(fit function or None, why it is missing) of contender ``name`` (see :data:`CONTENDERS`)."""
    library, model = name.split(" ")
    if library == "fastrec":
        return _fastrec(model), NOT_AVAILABLE
    if library == "implicit":
        return _implicit(model), NOT_INSTALLED
    return _lightfm(model.lower()), NOT_INSTALLED


def scores(recs: np.ndarray, test: sp.csr_matrix, threads: int | None = None) -> dict[str, float]:
    """precision, recall, NDCG and MAP at 10 of a top-10 table (fastrec.metrics)."""
    from fastrec.metrics import ranking_metrics

    found = ranking_metrics(np.asarray(recs, dtype=np.int64), test, TOP_N, n_threads=threads)
    return {m: found[m] for m in METRICS}


def settings(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of ``grid``'s values, in order."""
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


def evaluate_contender(
    fit: Callable,
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    grid: dict[str, list[Any]] | None,
    *,
    factors: int,
    threads: int | None,
    seed: int,
    leave_out: int,
    repeats: int = 1,
) -> list[tuple[str, dict[str, float], float]]:
    """Rows (settings text, test scores, fit seconds): the defaults, then the grid's best.

    The grid's settings are fitted on the training part less a validation
    split (leave-``leave_out``-out, seed ``seed + 1``) and ranked by
    NDCG@10 on it; the best is refitted on the whole training part.  Each
    row's scores are means over ``repeats`` fits with model seeds ``seed``,
    ``seed + 1``, ..., plus ``ndcg_sd``, the standard deviation of their
    NDCG@10 (0 for one fit); its seconds are the median fit.
    """

    def repeated(params: dict) -> tuple[dict[str, float], float]:
        found, seconds = [], []
        for r in range(repeats):
            start = time.perf_counter()
            recs = fit(train, params, factors, threads, seed + r)
            seconds.append(time.perf_counter() - start)
            found.append(scores(recs, test, threads))
        mean = {m: float(np.mean([f[m] for f in found])) for m in METRICS}
        mean["ndcg_sd"] = float(np.std([f["ndcg"] for f in found], ddof=1)) if repeats > 1 else 0.0
        return mean, float(np.median(seconds))

    rows = [("defaults", *repeated({}))]
    if not grid:
        return rows
    inner, valid = split(train, leave_out, seed + 1)
    best, best_score = None, -np.inf
    for candidate in settings(grid):
        found = scores(fit(inner, candidate, factors, threads, seed), valid, threads)[SELECTION]
        if found > best_score:  # ties keep the earlier setting
            best, best_score = candidate, found
    assert best is not None  # a grid has at least one setting
    text = "tuned: " + ", ".join(f"{k}={v:g}" for k, v in best.items())
    rows.append((text, *repeated(best)))
    return rows


def evaluate_dataset(
    X: sp.csr_matrix,
    names: Sequence[str] = CONTENDERS,
    *,
    factors: int = 64,
    threads: int | None = None,
    seed: int = 0,
    leave_out: int = 5,
    search: bool = True,
    repeats: int = 1,
    log: Any = None,
) -> list[list[Any]]:
    """The table rows of one dataset: every contender in ``names``, defaults and tuned.

    Returns
    -------
    list of list
        ``[contender, settings, precision@10, recall@10, ndcg@10, ndcg sd, map@10, fit s]``,
        means over ``repeats`` model seeds (see :func:`evaluate_contender`); a missing
        contender has one row saying why, with ``-`` for the numbers.
    """
    train, test = split(X, leave_out, seed)
    rows: list[list[Any]] = []
    for name in names:
        fit, why = contender(name)
        if fit is None:
            rows.append([name, why, *["-"] * (len(METRICS) + 2)])
            continue
        for text, found, seconds in evaluate_contender(
            fit,
            train,
            test,
            GRIDS[name] if search else None,
            factors=factors,
            threads=threads,
            seed=seed,
            leave_out=leave_out,
            repeats=repeats,
        ):
            numbers = [f"{found[m]:.4f}" for m in METRICS]
            numbers.insert(METRICS.index("ndcg") + 1, f"{found['ndcg_sd']:.4f}")
            rows.append([name, text, *numbers, f"{seconds:.2f}"])
            if log is not None:
                print(
                    f"  {name} ({text}): ndcg@10 {found['ndcg']:.4f} sd {found['ndcg_sd']:.4f}",
                    file=log,
                    flush=True,
                )
    return rows


HEADER = ["model", "settings", "precision@10", "recall@10", "ndcg@10", "ndcg sd", "map@10", "fit + top-10 s"]


def main(argv: Sequence[str] | None = None, prog: str = "python -m fastrec.bench implicit --accuracy") -> int:
    """Print one table per dataset found; exit code 2 when none is."""
    from fastrec.bench._common import Parser, machine_summary

    parser = Parser(prog=prog, description=(__doc__ or "").split("\n\n")[0].replace("``", ""))
    parser.add_argument("--data", default=None, help="folder holding the datasets' folders, or one of them")
    parser.add_argument(
        "--datasets",
        default=",".join(DATASETS),
        help=f"datasets to run, comma-separated (default {','.join(DATASETS)})",
    )
    parser.add_argument("--factors", type=int, default=64, help="factors of every model (default 64)")
    parser.add_argument("--leave-out", type=int, default=5, help="test positives per user (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="threads of every library (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the splits and the models (default 0)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="fits per row, model seeds seed, seed+1, ... (default 3)"
    )
    parser.add_argument("--no-peers", action="store_true", help="fastrec's models only")
    parser.add_argument("--no-search", action="store_true", help="defaults only, no grid search")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    chosen = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in chosen if d not in DATASETS]
    if unknown or not chosen:
        parser.error(f"--datasets takes some of {', '.join(DATASETS)}, got {args.datasets!r}")
    for option in ("factors", "leave_out", "repeats"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be >= 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    found = {name: find_dataset(name, args.data) for name in chosen}
    if not any(found.values()):
        where = f"in {args.data}" if args.data else "in $FASTREC_DATA or ../shared/data; pass --data PATH"
        print(f"{prog}: error: none of {', '.join(chosen)} found {where}", file=sys.stderr)
        return 2
    names = [c for c in CONTENDERS if not args.no_peers or c.startswith("fastrec ")]
    import fastrec

    threads = args.threads or fastrec.get_num_threads()
    print(
        f"# ALS, BPR and WARP accuracy: {args.factors} factors, leave-{args.leave_out}-out "
        f"split (seed {args.seed}), means over {args.repeats} model seeds, {threads} threads"
    )
    print(machine_summary())
    for name, folder in found.items():
        if folder is None:
            print(f"\n{name}: not found, skipped")
            continue
        X, text = load_positives(name, folder)
        print(f"\n## {text} ({folder})\n")
        rows = evaluate_dataset(
            X,
            names,
            factors=args.factors,
            threads=threads,
            seed=args.seed,
            leave_out=args.leave_out,
            search=not args.no_search,
            repeats=args.repeats,
            log=sys.stderr,
        )
        print(format_table(HEADER, rows), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
