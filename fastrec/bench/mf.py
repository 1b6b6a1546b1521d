"""``fastrec bench mf``: SGD matrix factorization against Surprise and LIBMF.

Every contender fits the same synthetic train split (80% of the ratings of the
size) with k=100 factors for 20 epochs and is scored on the held-out 20% (test
RMSE); the time is the fit alone.  "M updates/s" is train ratings x epochs /
median fit time.

Peers, skipped when not installed: Surprise ``SVD`` (Cython, one thread) with
its default lr 0.005 and reg 0.02, by default only on sizes up to M
(``--surprise-sizes``: on L it takes many minutes); LIBMF through the PyPI
``libmf`` package (built without SIMD) with LIBMF's own defaults (eta 0.1, L2
0.1) and no biases, its RMSE computed from its P and Q factors; and the
official LIBMF built with its SIMD kernels, when ``FASTREC_BENCH_LIBMF`` names
its shared library, called through ctypes with the same settings.  Build it
in LIBMF's source with ``make lib DFLAG="-DUSEAVX -DUSEOMP" CXXFLAGS="-O3
-march=native -mavx -fopenmp -std=c++0x"`` and link it with OpenMP
(``g++ -shared -fopenmp -o libmf.so.2 mf.o``: the Makefile's ``lib`` target
leaves ``-fopenmp`` out of the link).

``--accuracy`` runs :mod:`fastrec.bench.mf_accuracy` instead (MovieLens 100K
u1..u5 RMSE).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec.bench import suite
from fastrec.bench._common import RATING_SIZES, blas_threads, make_size_ratings, shape_text

NAME = "mf"
TITLE = "SGD matrix factorization (fit time, test RMSE)"
UNIT = "s"
SIZES = dict(RATING_SIZES)
DEFAULT_SIZES = ("S", "M", "L")
SURPRISE = "Surprise SVD (1 thread)"
LIBMF = "libmf (PyPI, no SIMD)"
LIBMF_NATIVE = "LIBMF (official, SIMD build)"
LIBMF_NATIVE_VARIABLE = "FASTREC_BENCH_LIBMF"


def split(R: sp.csr_matrix, seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    """(train CSR, test array of user, item, rating rows): a random 80/20 split."""
    coo = R.tocoo()
    rng = np.random.default_rng(seed)
    test = rng.random(coo.nnz) < 0.2
    train = sp.csr_matrix((coo.data[~test], (coo.row[~test], coo.col[~test])), shape=R.shape)
    rows = np.column_stack([coo.row[test], coo.col[test], coo.data[test]]).astype(np.float64)
    return train, rows


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, dtype=np.float64) - truth) ** 2)))


def fastrec_contender(backend: str, threads: int, factors: int, epochs: int, **params: Any) -> Callable:
    from fastrec import MatrixFactorization

    def run(train: sp.csr_matrix, test: np.ndarray) -> tuple[float, float]:
        model = MatrixFactorization(
            n_factors=factors, n_epochs=epochs, random_state=0, n_threads=threads, backend=backend, **params
        )
        start = time.perf_counter()
        model.fit(train)
        seconds = time.perf_counter() - start
        return seconds, rmse(
            model.predict(test[:, 0].astype(np.int64), test[:, 1].astype(np.int64)), test[:, 2]
        )

    return run


def surprise_contender(factors: int, epochs: int) -> Callable | None:
    try:
        import pandas as pd
        from surprise import SVD, Dataset, Reader
    except ImportError:
        return None

    def run(train: sp.csr_matrix, test: np.ndarray) -> tuple[float, float]:
        coo = train.tocoo()
        frame = pd.DataFrame({"u": coo.row, "i": coo.col, "r": coo.data.astype(np.float64)})
        trainset = Dataset.load_from_df(frame, Reader(rating_scale=(1, 5))).build_full_trainset()
        algo = SVD(n_factors=factors, n_epochs=epochs, random_state=0)
        start = time.perf_counter()  # the fit alone, as for every contender
        algo.fit(trainset)
        seconds = time.perf_counter() - start
        # vectorised scoring of the fitted parameters (algo.predict is a Python loop)
        inner_u = np.array([trainset._raw2inner_id_users.get(int(u), -1) for u in test[:, 0]])
        inner_i = np.array([trainset._raw2inner_id_items.get(int(i), -1) for i in test[:, 1]])
        known_u, known_i = inner_u >= 0, inner_i >= 0
        pred = np.full(test.shape[0], trainset.global_mean)
        pred[known_u] += algo.bu[inner_u[known_u]]
        pred[known_i] += algo.bi[inner_i[known_i]]
        both = known_u & known_i
        pred[both] += np.einsum("ij,ij->i", algo.pu[inner_u[both]], algo.qi[inner_i[both]])
        return seconds, rmse(np.clip(pred, 1, 5), test[:, 2])

    return run


# LIBMF's own defaults, given to both LIBMF contenders: L2 only, no biases.
LIBMF_SETTINGS = {"eta": 0.1, "lambda_p2": 0.1, "lambda_q2": 0.1, "lambda_p1": 0.0, "lambda_q1": 0.0}


def factor_rmse(P: np.ndarray, Q: np.ndarray, test: np.ndarray, mean: float) -> float:
    """Test RMSE of an unbiased factor model: <p_u, q_i> clipped to 1..5, ``mean`` for unseen ids."""
    u, i = test[:, 0].astype(np.int64), test[:, 1].astype(np.int64)
    known = (u < P.shape[0]) & (i < Q.shape[0])
    pred = np.full(u.size, mean)
    pred[known] = np.einsum("ij,ij->i", P[u[known]], Q[i[known]])
    return rmse(np.clip(pred, 1, 5), test[:, 2])


def libmf_contender(threads: int, factors: int, epochs: int) -> Callable | None:
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints on import
            from libmf import mf as libmf
    except (ImportError, OSError):
        return None

    def run(train: sp.csr_matrix, test: np.ndarray) -> tuple[float, float]:
        coo = train.tocoo()
        data = np.column_stack([coo.row, coo.col, coo.data]).astype(np.float32)
        engine = libmf.MF(
            k=factors,
            nr_threads=threads,
            nr_iters=epochs,
            **LIBMF_SETTINGS,
            quiet=True,
        )
        start = time.perf_counter()
        engine.fit(data)
        seconds = time.perf_counter() - start
        P, Q = engine.p_factors(), engine.q_factors()
        return seconds, factor_rmse(P, Q, test, float(coo.data.mean()))

    return run


class _Node(ctypes.Structure):
    _fields_ = [("u", ctypes.c_int), ("v", ctypes.c_int), ("r", ctypes.c_float)]


class _Problem(ctypes.Structure):
    _fields_ = [
        ("m", ctypes.c_int),
        ("n", ctypes.c_int),
        ("nnz", ctypes.c_longlong),
        ("R", ctypes.POINTER(_Node)),
    ]


class _Parameter(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int) for name in ("fun", "k", "nr_threads", "nr_bins", "nr_iters")]
    _fields_ += [
        (name, ctypes.c_float)
        for name in ("lambda_p1", "lambda_p2", "lambda_q1", "lambda_q2", "eta", "alpha", "c")
    ]
    _fields_ += [(name, ctypes.c_bool) for name in ("do_nmf", "quiet", "copy_data")]


class _Model(ctypes.Structure):
    _fields_ = [
        ("fun", ctypes.c_int),
        ("m", ctypes.c_int),
        ("n", ctypes.c_int),
        ("k", ctypes.c_int),
        ("b", ctypes.c_float),
        ("P", ctypes.POINTER(ctypes.c_float)),
        ("Q", ctypes.POINTER(ctypes.c_float)),
    ]


def _native_libmf() -> ctypes.CDLL | None:
    """The official LIBMF shared library named by FASTREC_BENCH_LIBMF, or None."""
    path = os.environ.get(LIBMF_NATIVE_VARIABLE)
    if not path:
        return None
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    lib.mf_get_default_param.restype = _Parameter
    lib.mf_train.restype = ctypes.POINTER(_Model)
    lib.mf_train.argtypes = [ctypes.POINTER(_Problem), _Parameter]
    lib.mf_destroy_model.argtypes = [ctypes.POINTER(ctypes.POINTER(_Model))]
    return lib


def libmf_native_contender(threads: int, factors: int, epochs: int) -> Callable | None:
    """The official LIBMF with LIBMF's defaults (eta 0.1, L2 0.1, no biases), like the PyPI one."""
    lib = _native_libmf()
    if lib is None:
        return None

    def run(train: sp.csr_matrix, test: np.ndarray) -> tuple[float, float]:
        coo = train.tocoo()
        nodes = np.empty(coo.nnz, dtype=[("u", "<i4"), ("v", "<i4"), ("r", "<f4")])
        nodes["u"], nodes["v"], nodes["r"] = coo.row, coo.col, coo.data
        problem = _Problem(
            train.shape[0], train.shape[1], coo.nnz, nodes.ctypes.data_as(ctypes.POINTER(_Node))
        )
        param = lib.mf_get_default_param()
        param.k, param.nr_threads, param.nr_iters = factors, threads, epochs
        for name, value in LIBMF_SETTINGS.items():
            setattr(param, name, value)
        param.quiet, param.copy_data = True, False
        start = time.perf_counter()
        model = lib.mf_train(ctypes.byref(problem), param)
        seconds = time.perf_counter() - start
        if not model:
            raise RuntimeError("LIBMF's mf_train returned no model")
        m = model.contents
        P = np.ctypeslib.as_array(m.P, shape=(m.m, m.k)).astype(np.float64)
        Q = np.ctypeslib.as_array(m.Q, shape=(m.n, m.k)).astype(np.float64)
        lib.mf_destroy_model(ctypes.byref(model))
        return seconds, factor_rmse(P, Q, test, float(coo.data.mean()))

    return run


# --- the suite interface ---


def add_arguments(parser: Any) -> None:
    """Options of this benchmark."""
    parser.add_argument("--factors", type=int, default=100, help="factors (default 100)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs (default 20)")
    parser.add_argument(
        "--surprise-sizes",
        default="XS,S,M",
        help="sizes Surprise runs on (default XS,S,M: it needs minutes on L)",
    )
    parser.add_argument(
        "--accuracy", action="store_true", help="run the MovieLens 100K accuracy comparison instead"
    )


def contenders(options: dict[str, Any]) -> list[suite.Contender]:
    """fastrec's backends, LIBMF and Surprise when installed."""
    found = [suite.Contender(f"fastrec {b}", peer=False) for b in options["backends"]]
    if options["peers"]:
        if suite.installed("libmf"):
            found.append(suite.Contender(LIBMF))
        if _native_libmf() is not None:
            found.append(suite.Contender(LIBMF_NATIVE))
        if suite.installed("surprise"):
            surprise_sizes = tuple(s.strip() for s in options["surprise_sizes"].split(","))
            found.append(suite.Contender(SURPRISE, sizes=surprise_sizes))
    return found


def prepare(size: str, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Split the ratings of ``size`` 80/20 and write both parts to ``folder``."""
    R = make_size_ratings(size)
    train, test = split(R)
    sp.save_npz(folder / "train.npz", train)
    np.save(folder / "test.npy", test)
    return {
        "train": str(folder / "train.npz"),
        "test": str(folder / "test.npy"),
        "factors": options["factors"],
        "epochs": options["epochs"],
        "shape": f"{shape_text(R)}; {train.nnz:,} train, {test.shape[0]:,} test",
    }


def measure(contender: str, data: dict[str, Any], threads: int) -> dict[str, Any]:
    """Fit once (after a short warm-up fit for fastrec) and score the test split."""
    train = sp.load_npz(data["train"]).tocsr()
    test = np.load(data["test"])
    factors, epochs = int(data["factors"]), int(data["epochs"])
    used = threads
    run: Callable | None
    if contender.startswith("fastrec "):
        backend = contender.split(" ", 1)[1]
        fastrec_contender(backend, threads, 8, 1)(train, test)  # JIT and thread-pool warm-up
        run = fastrec_contender(backend, threads, factors, epochs)
    elif contender == LIBMF:
        run = libmf_contender(threads, factors, epochs)
    elif contender == LIBMF_NATIVE:
        run = libmf_native_contender(threads, factors, epochs)
    else:
        run, used = surprise_contender(factors, epochs), 1
    if run is None:  # contenders() lists only the installed peers; a worker may still lack one
        raise RuntimeError(f"{contender} is not installed in this environment")
    cpu = time.process_time()
    with blas_threads(threads):
        seconds, error = run(train, test)
    cpu = time.process_time() - cpu  # includes the scoring of the test split
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "threads": used,
        "quality": {"test RMSE": round(error, 5)},
        "work": {"M updates/s": train.nnz * epochs / 1e6},
    }


def main(argv: Sequence[str] | None = None, prog: str = "python -m fastrec.bench mf") -> int:
    """Run this benchmark alone; ``--accuracy`` runs the MovieLens 100K comparison."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--accuracy" in argv:
        from fastrec.bench import mf_accuracy

        # every other option (--data, --threads, --seed, --no-peers) is the accuracy run's
        return mf_accuracy.main([a for a in argv if a != "--accuracy"])
    return suite.main([NAME], argv, prog)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
