"""``fastrec bench implicit``: ALS, BPR and WARP on behaviour data, beside implicit and LightFM.

Every contender fits the same training split (a seeded random 80% of the
interactions of the size) and is scored on the held-out 20% with
``fastrec.metrics.ranking_metrics`` (precision@10 and NDCG@10 of the top-10 of
every user, training items excluded; every held-out interaction relevant),
outside the timing.  The data follow the synthetic ratings' power-law user
activity and item popularity: play counts on XS and M (a heavy-tailed count per
pair that grows with the pair's rating), binary on L (``--values`` chooses).

Times are per ALS iteration and per BPR / WARP epoch (a fit of
``--als-iterations`` / ``--bpr-epochs`` / ``--warp-epochs``, divided), after an
untimed warm-up fit on tiny data (JIT, thread pools).  "M samples/s" is
training interactions x 1 / median epoch time (one epoch visits every positive
once; WARP then draws up to ``max_sampled`` negatives for it).  "GFLOP/s" of
the ALS contenders is the work model of one conjugate-gradient iteration over
both sides (:func:`als_flops`) / median iteration time, and "SGEMM (numpy)"
measures in the same run what the BLAS reaches on a float32 matrix product
(as ``fastrec bench roofline`` does): the report gives each ALS contender's
fraction of it.

Contenders: fastrec ``ALS``, ``BPR`` and ``WARP`` on each backend (a model this
installation lacks fails with "not available in this installation"), and,
when installed, implicit's CPU ``AlternatingLeastSquares`` (``use_cg=True``,
the same number of CG steps, given the confidence ``1 + alpha * f(x)`` that
fastrec's ALS computes, so both solve one problem) and
``BayesianPersonalizedRanking`` (same lr and reg; its ``factors`` include the
item bias, as fastrec's BPR has one), and LightFM's WARP and BPR (same lr,
adagrad, ``max_sampled``; no regularisation, LightFM's default).  Threads: each
library's own knob (``n_threads``, ``num_threads``) at the thread count, the BLAS
pools held to it through threadpoolctl, except implicit's ALS, whose BLAS is
held to one thread as implicit asks (its own threads solve the rows).
Ratios are against fastrec cpp of the same model.

``--accuracy`` runs :mod:`fastrec.bench.implicit_accuracy` instead (Last.fm,
MovieLens 100K and latest-small; defaults and a small grid search).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec.bench import suite
from fastrec.bench._common import RATING_SIZES, TINY, blas_threads, format_table, make_size_ratings

NAME = "implicit"
TITLE = "behaviour-data models: ALS, BPR, WARP (time per iteration or epoch, precision@10)"
UNIT = "s per iteration"
SIZES = {
    "XS": RATING_SIZES["XS"].replace("ratings", "play counts"),
    "M": RATING_SIZES["M"].replace("ratings", "play counts"),
    "L": RATING_SIZES["L"].replace("ratings", "interactions, binary"),
}
DEFAULT_SIZES = ("M", "L")
MODELS = ("ALS", "BPR", "WARP")
VALUES = {"XS": "counts", "M": "counts", "L": "binary"}
TOP_N = 10
IMPLICIT_ALS = "implicit ALS (CG)"
IMPLICIT_BPR = "implicit BPR"
LIGHTFM_WARP = "LightFM WARP"
LIGHTFM_BPR = "LightFM BPR"
SGEMM = "SGEMM (numpy)"
PEERS = {"ALS": (IMPLICIT_ALS,), "BPR": (IMPLICIT_BPR, LIGHTFM_BPR), "WARP": (LIGHTFM_WARP,)}
PEER_PACKAGE = {
    IMPLICIT_ALS: "implicit",
    IMPLICIT_BPR: "implicit",
    LIGHTFM_WARP: "lightfm",
    LIGHTFM_BPR: "lightfm",
}
GFLOPS = "GFLOP/s"
SAMPLES = "M samples/s"


# --- data ---


def make_interactions(size: str, values: str = "auto", seed: int = 0) -> sp.csr_matrix:
    """The users x items behaviour data of benchmark size ``size``.

    Parameters
    ----------
    size : {"XS", "M", "L"}
        The pattern of the synthetic ratings of that size (power-law activity
        and popularity; :func:`fastrec.bench._common.make_size_ratings`).
    values : {"auto", "binary", "counts"}
        ``binary`` stores 1 per interaction; ``counts`` a play count
        ``1 + floor(pareto(1.5) * 2 ** (rating - 1))`` (heavy-tailed, larger for
        pairs rated higher); ``auto`` is counts on XS and M, binary on L.
    seed : int

    Returns
    -------
    scipy.sparse.csr_matrix of float32, shape (n_users, n_items)
    """
    if values not in ("auto", "binary", "counts"):
        raise ValueError(f"values={values!r} is not one of 'auto', 'binary', 'counts'.")
    kind = VALUES.get(size, "counts") if values == "auto" else values
    R = make_size_ratings(size, seed=seed).tocsr()
    if kind == "binary":
        data = np.ones(R.nnz, dtype=np.float32)
    else:
        rng = np.random.default_rng(seed + 1)
        data = (1.0 + np.floor(rng.pareto(1.5, R.nnz) * 2.0 ** (R.data - 1.0))).astype(np.float32)
    return sp.csr_matrix((data, R.indices, R.indptr), shape=R.shape)


def confidence_values(values: np.ndarray, alpha: float, kind: str) -> np.ndarray:
    """``1 + alpha * x`` (``kind="linear"``) or ``1 + alpha * log1p(x)`` (``"log"``), float32."""
    x = np.asarray(values, dtype=np.float64)
    scaled = np.log1p(x) if kind == "log" else x
    return (1.0 + alpha * scaled).astype(np.float32)


def als_flops(n_users: int, n_items: int, nnz: int, factors: int, cg_steps: int) -> float:
    """Floating-point operations of one ALS iteration (users then items) by conjugate gradient.

    Per side that solves ``m`` rows against the other side's ``n`` rows, with
    ``k`` factors and ``s`` CG steps:

    * the Gram matrix ``Y^T Y``: ``k^2 n`` (its symmetric half, 2 flops per
      multiply-add);
    * the right-hand sides ``sum_i c_ui y_i``: ``2 k nnz``;
    * ``s + 1`` products with ``A_u = Y^T Y + sum_i (c_ui - 1) y_i y_i^T``
      (the initial residual and one per step): ``2 k^2 m + 4 k nnz`` each;
    * the step's vector updates (two dots, three axpys): ``10 k s m``.

    Returns
    -------
    float
        The sum over both sides.
    """
    k, s = float(factors), float(cg_steps)
    total = 0.0
    for m, n in ((n_users, n_items), (n_items, n_users)):
        total += k * k * n + 2.0 * k * nnz + (s + 1.0) * (2.0 * k * k * m + 4.0 * k * nnz) + 10.0 * k * s * m
    return total


# --- contenders (worker side): each fits ``train`` and returns (fit seconds, cpu seconds, recs) ---


def _fastrec_class(model: str) -> Any:
    """``fastrec.<model>``, or a RuntimeError saying this installation lacks it."""
    import fastrec

    cls = getattr(fastrec, model, None)
    if cls is None:
        raise RuntimeError(f"fastrec.{model} is not available in this installation")
    return cls


def fastrec_params(model: str, data: dict[str, Any], factors: int, backend: str, threads: int) -> dict:
    """Constructor arguments of fastrec's ``model`` for the benchmark's settings."""
    common = {"n_factors": factors, "random_state": 0, "n_threads": threads, "backend": backend}
    if model == "ALS":
        return {
            **common,
            "n_iterations": int(data["als_iterations"]),
            "reg": float(data["als_reg"]),
            "alpha": float(data["alpha"]),
            "confidence": data["confidence"],
            "cg_steps": int(data["cg_steps"]),
        }
    if model == "BPR":
        return {
            **common,
            "n_epochs": int(data["bpr_epochs"]),
            "lr": float(data["lr"]),
            "reg": float(data["bpr_reg"]),
        }
    return {
        **common,
        "n_epochs": int(data["warp_epochs"]),
        "lr": float(data["lr"]),
        "reg": 0.0,
        "max_sampled": int(data["max_sampled"]),
    }


def _top_n(U: np.ndarray, V: np.ndarray, train: sp.csr_matrix, threads: int) -> np.ndarray:
    """Top-10 item table of a factor model, training items excluded (fastrec.topn, exact)."""
    import fastrec

    U = np.ascontiguousarray(U, dtype=np.float32)
    V = np.ascontiguousarray(V, dtype=np.float32)
    return fastrec.topn(U, V, TOP_N, exclude=train, n_threads=threads)[0]


def _fit_fastrec(model: str, backend: str, data: dict, factors: int, threads: int) -> Callable:
    cls = _fastrec_class(model)

    def run(train: sp.csr_matrix, warm_up: bool = False) -> tuple[float, float, np.ndarray | None]:
        params = fastrec_params(model, data, 8 if warm_up else factors, backend, threads)
        if warm_up:
            params.update({"n_iterations" if model == "ALS" else "n_epochs": 1})
        fitted = cls(**params)
        seconds, cpu, _ = suite.timed(lambda: fitted.fit(train))
        if warm_up:
            return seconds, cpu, None
        return seconds, cpu, fitted.recommend(np.arange(train.shape[0]), n=TOP_N)[0]

    return run


def _fit_implicit_als(data: dict, factors: int, threads: int) -> Callable:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    def run(train: sp.csr_matrix, warm_up: bool = False) -> tuple[float, float, np.ndarray | None]:
        # implicit reads each value as the confidence itself: give it fastrec's 1 + alpha * f(x)
        C = train.copy()
        C.data = confidence_values(train.data, float(data["alpha"]), data["confidence"])
        model = AlternatingLeastSquares(
            factors=8 if warm_up else factors,
            regularization=float(data["als_reg"]),
            alpha=1.0,
            use_cg=True,
            iterations=1 if warm_up else int(data["als_iterations"]),
            num_threads=threads,
            random_state=0,
        )
        model.cg_steps = int(data["cg_steps"])
        with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its advice to hold the BLAS to one thread, followed
            seconds, cpu, _ = suite.timed(lambda: model.fit(C, show_progress=False))
        if warm_up:
            return seconds, cpu, None
        return seconds, cpu, _top_n(model.user_factors, model.item_factors, train, threads)

    return run


def _fit_implicit_bpr(data: dict, factors: int, threads: int) -> Callable:
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    def run(train: sp.csr_matrix, warm_up: bool = False) -> tuple[float, float, np.ndarray | None]:
        model = BayesianPersonalizedRanking(
            factors=8 if warm_up else factors,
            learning_rate=float(data["lr"]),
            regularization=float(data["bpr_reg"]),
            iterations=1 if warm_up else int(data["bpr_epochs"]),
            num_threads=threads,
            random_state=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seconds, cpu, _ = suite.timed(lambda: model.fit(train, show_progress=False))
        if warm_up:
            return seconds, cpu, None
        # user factors end in a column of ones, item factors in the item bias
        return seconds, cpu, _top_n(model.user_factors, model.item_factors, train, threads)

    return run


def _fit_lightfm(loss: str, data: dict, factors: int, threads: int) -> Callable:
    from lightfm import LightFM

    def run(train: sp.csr_matrix, warm_up: bool = False) -> tuple[float, float, np.ndarray | None]:
        epochs = int(data["warp_epochs"] if loss == "warp" else data["bpr_epochs"])
        model = LightFM(
            no_components=8 if warm_up else factors,
            loss=loss,
            learning_schedule="adagrad",
            learning_rate=float(data["lr"]),
            max_sampled=int(data["max_sampled"]),
            random_state=0,
        )
        positives = train.tocoo()
        positives.data = np.ones_like(positives.data)
        seconds, cpu, _ = suite.timed(
            lambda: model.fit(positives, epochs=1 if warm_up else epochs, num_threads=threads)
        )
        if warm_up:
            return seconds, cpu, None
        # score = user . item + item bias (+ user bias, the same for every item of a user)
        U = np.hstack([model.user_embeddings, np.ones((train.shape[0], 1), dtype=np.float32)])
        V = np.hstack([model.item_embeddings, model.item_biases[:, None]])
        return seconds, cpu, _top_n(U, V, train, threads)

    return run


def family(contender: str) -> str:
    """``"ALS"``, ``"BPR"``, ``"WARP"`` or ``"SGEMM"``: the model a contender name runs."""
    if contender.lower().startswith("sgemm"):  # "sgemm [avx2: Haswell]" under --simd
        return "SGEMM"
    for model in MODELS:
        if f" {model}" in f" {contender}":
            return model
    raise ValueError(f"unknown contender {contender!r}")


def _runner(name: str, data: dict, factors: int, threads: int) -> Callable:
    if name.startswith("fastrec "):
        _, model, backend = name.split(" ")  # "fastrec ALS cpp"
        return _fit_fastrec(model, backend, data, factors, threads)
    if name == IMPLICIT_ALS:
        return _fit_implicit_als(data, factors, threads)
    if name == IMPLICIT_BPR:
        return _fit_implicit_bpr(data, factors, threads)
    if name in (LIGHTFM_WARP, LIGHTFM_BPR):
        return _fit_lightfm(family(name).lower(), data, factors, threads)
    raise ValueError(f"unknown contender {name!r}")


# --- the suite interface ---


def _factor_list(text: str) -> list[int]:
    try:
        found = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        found = []
    if not found or any(k < 1 for k in found):
        raise ValueError(f"--factors takes positive whole numbers such as 64 or 64,128, got {text!r}")
    return found


def _model_list(text: str) -> list[str]:
    found = [part.strip().upper() for part in str(text).split(",") if part.strip()]
    unknown = [m for m in found if m not in MODELS]
    if not found or unknown:
        raise ValueError(f"--models takes some of als, bpr, warp (comma-separated), got {text!r}")
    return found


def add_arguments(parser: Any) -> None:
    """Options of this benchmark."""
    parser.add_argument(
        "--factors", default="64", help="factor counts, e.g. 64 or 64,128 (each a contender; default 64)"
    )
    parser.add_argument("--models", default="als,bpr,warp", help="models to run (default als,bpr,warp)")
    parser.add_argument(
        "--values",
        choices=["auto", "binary", "counts"],
        default="auto",
        help="interaction values: play counts, or 1 (default auto: counts on XS and M, binary on L)",
    )
    parser.add_argument("--als-iterations", type=int, default=15, help="ALS iterations (default 15)")
    parser.add_argument("--bpr-epochs", type=int, default=20, help="BPR epochs (default 20)")
    parser.add_argument("--warp-epochs", type=int, default=10, help="WARP epochs (default 10)")
    parser.add_argument("--cg-steps", type=int, default=3, help="ALS conjugate-gradient steps (default 3)")
    parser.add_argument("--als-reg", type=float, default=0.01, help="ALS regularisation (default 0.01)")
    parser.add_argument("--alpha", type=float, default=1.0, help="ALS confidence weight (default 1.0)")
    parser.add_argument(
        "--confidence",
        choices=["linear", "log"],
        default="log",
        help="ALS confidence 1 + alpha x (linear) or 1 + alpha log(1 + x) (default log)",
    )
    parser.add_argument("--lr", type=float, default=0.05, help="BPR and WARP learning rate (default 0.05)")
    parser.add_argument("--bpr-reg", type=float, default=0.01, help="BPR regularisation (default 0.01)")
    parser.add_argument(
        "--max-sampled", type=int, default=10, help="WARP negatives per positive (default 10)"
    )
    parser.add_argument(
        "--gemm-size",
        type=int,
        default=2048,
        help="n of the n x n SGEMM ceiling the ALS rate is compared with (0: none; default 2048)",
    )
    parser.add_argument(
        "--accuracy", action="store_true", help="run the accuracy comparison on real data instead"
    )


def contenders(options: dict[str, Any]) -> list[suite.Contender]:
    """fastrec's ALS, BPR, WARP on each backend; implicit, LightFM and the SGEMM ceiling as peers.

    Every factor count of ``--factors`` beyond one gets its own copy, named ``... k=128``.
    """
    factors = _factor_list(options["factors"])
    models = _model_list(options["models"])
    base: list[tuple[str, bool]] = []  # (name, peer)
    for model in models:
        base += [(f"fastrec {model} {backend}", False) for backend in options["backends"]]
        if options["peers"]:
            base += [(p, True) for p in PEERS[model] if suite.installed(PEER_PACKAGE[p])]
    found = []
    for k in factors:
        suffix = f" k={k}" if len(factors) > 1 else ""
        found += [suite.Contender(name + suffix, key=f"k={k} {name}", peer=peer) for name, peer in base]
    if options["peers"] and "ALS" in models and int(options["gemm_size"]) > 0:
        found.append(suite.Contender(SGEMM, key="sgemm", blas=True))
    return found


def prepare(size: str, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Make the interactions of ``size``, split them 80/20 at random (seed 0) and write both parts."""
    from fastrec.datasets import train_test_split

    R = make_interactions(size, options["values"])
    train, test = train_test_split(R, 0.2, seed=0)
    sp.save_npz(folder / "train.npz", train)
    sp.save_npz(folder / "test.npz", test)
    kind = "binary" if np.all(R.data == 1.0) else f"counts 1 to {R.data.max():,.0f}"
    settings = {
        key: options[key]
        for key in (
            "als_iterations",
            "bpr_epochs",
            "warp_epochs",
            "cg_steps",
            "als_reg",
            "alpha",
            "confidence",
            "lr",
            "bpr_reg",
            "max_sampled",
            "gemm_size",
        )
    }
    return {
        "train": str(folder / "train.npz"),
        "test": str(folder / "test.npz"),
        "factors": _factor_list(options["factors"]),
        **settings,
        "shape": f"{R.shape[0]:,} x {R.shape[1]:,}, {R.nnz:,} interactions ({kind}); "
        f"{train.nnz:,} train, {test.nnz:,} test",
    }


def measure(contender: str, data: dict[str, Any], threads: int) -> dict[str, Any]:
    """Warm up on tiny data, time one fit, and score its top-10 lists on the held-out part.

    ``contender`` is a key of :func:`contenders`: ``"k=64 fastrec ALS cpp"``,
    ``"k=64 implicit BPR"``, ... or ``"sgemm"``.
    """
    from fastrec.datasets import make_ratings
    from fastrec.metrics import ranking_metrics

    if contender == "sgemm":
        from fastrec.bench.roofline import sgemm

        n = int(data["gemm_size"])
        out = sgemm(n, threads)
        return {
            "seconds": out["seconds"],
            "cpu_seconds": None,
            "quality": {},
            "work": {GFLOPS: out["flops"] / 1e9},
        }
    head, _, name = contender.partition(" ")
    if not head.startswith("k="):
        raise ValueError(f"contender key {contender!r} must start with k=FACTORS")
    factors = int(head[2:])
    model = family(name)
    train = sp.load_npz(data["train"]).tocsr()
    test = sp.load_npz(data["test"]).tocsr()
    run = _runner(name, data, factors, threads)
    passes = int(data["als_iterations"] if model == "ALS" else data[f"{model.lower()}_epochs"])
    with blas_threads(threads):
        tiny = make_ratings(*TINY, seed=1)
        run(
            sp.csr_matrix((np.ones(tiny.nnz, dtype=np.float32), tiny.indices, tiny.indptr), shape=tiny.shape),
            True,
        )
        seconds, cpu, recs = run(train)
    scores = ranking_metrics(np.asarray(recs, dtype=np.int64), test, TOP_N)
    if model == "ALS":
        n_users, n_items = train.shape
        work = {GFLOPS: als_flops(n_users, n_items, train.nnz, factors, int(data["cg_steps"])) / 1e9}
    else:
        work = {SAMPLES: train.nnz / 1e6}
    return {
        "seconds": seconds / passes,
        "cpu_seconds": cpu / passes,
        "quality": {
            f"precision@{TOP_N}": round(scores["precision"], 4),
            f"ndcg@{TOP_N}": round(scores["ndcg"], 4),
        },
        "work": work,
    }


# --- report: one table per model (ratios against fastrec cpp of that model) and the ALS roofline ---


def _median(values: Sequence[float]) -> float | None:
    import statistics

    return statistics.median(values) if values else None


def roofline_rows(records: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Rows (size, threads, contender, GFLOP/s, fraction of SGEMM) of the ALS roofline table.

    Per size and thread count: the SGEMM ceiling (the fastest, under ``--simd``
    one per level), then every ALS contender with its rate as a fraction of it.
    """
    from fastrec.bench.report import rates

    rows: list[list[Any]] = []
    keys = list(dict.fromkeys((r["size"], r["threads"]) for r in records))
    for size, threads in keys:
        same = [r for r in records if (r["size"], r["threads"]) == (size, threads)]
        gemms = [r for r in same if family(r["contender"]) == "SGEMM"]
        ceiling = max([rates(r).get(GFLOPS, 0.0) for r in gemms] or [0.0]) or None
        for r in gemms:
            rows.append([size, threads, r["contender"], rates(r).get(GFLOPS, "failed"), "ceiling"])
        for r in same:
            if family(r["contender"]) != "ALS":
                continue
            rate = rates(r).get(GFLOPS)
            share = f"{100 * rate / ceiling:.1f}%" if rate and ceiling else "-"
            rows.append([size, threads, r["contender"], "failed" if rate is None else rate, share])
    return rows


def tables(records: Sequence[dict[str, Any]], sizes: Sequence[str], size_descriptions: dict[str, str]) -> str:
    """The usual tables, one per model so that each compares like with like, and the ALS roofline."""
    from fastrec.bench import report

    units = {"ALS": "s per iteration", "BPR": "s per epoch", "WARP": "s per epoch"}
    parts = []
    for model in MODELS:
        mine = [r for r in records if family(r["contender"]) == model]
        if not mine:
            continue
        # a name outside the registry: the report's own tables, not this hook again
        section = report.Section(
            f"{NAME}-{model}", model, units[model], "", list(sizes), size_descriptions, mine
        )
        parts.append(f"**{model}** ({units[model]})\n\n" + report.section_tables(section))
    rows = roofline_rows(records)
    if any(family(r[2]) == "SGEMM" for r in rows):
        parts.append(
            "**ALS against the SGEMM ceiling** (GFLOP/s of the CG work model, `als_flops`; "
            "SGEMM measured in the same run with the same threads)\n\n"
            + format_table(["size", "threads", "contender", GFLOPS, "of SGEMM"], rows)
        )
    return "\n\n".join(parts)


def chart(records: Sequence[dict[str, Any]], path: Path, title: str = TITLE) -> Path:
    """The report's usual chart (median time by size, and ratios) of every record."""
    from fastrec.bench import report

    sizes = list(dict.fromkeys(r["size"] for r in records))
    section = report.Section(f"{NAME}-all", title, UNIT, "", sizes, {}, list(records))
    return report.chart(section, Path(path))


def main(argv: Sequence[str] | None = None, prog: str = "python -m fastrec.bench implicit") -> int:
    """Run this benchmark alone; ``--accuracy`` runs the real-data accuracy comparison instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--accuracy" in argv:
        from fastrec.bench import implicit_accuracy

        return implicit_accuracy.main([a for a in argv if a != "--accuracy"], prog=f"{prog} --accuracy")
    return suite.main([NAME], argv, prog)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
