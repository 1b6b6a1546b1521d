"""``fastrec bench cosine``: item-item cosine (and other similarity) top-k, beside its peers.

Every contender starts from the same users x items CSR (float32 ratings) and
ends with each item's top-k neighbours (k=50 by default), the item itself
included (as sparse_dot_topn and implicit return it, so fastrec runs with
``exclude_self=False``).  Normalisation, weighting and transposes are inside
the timing, and every library gets the same thread count (its own setting and
threadpoolctl).

Peers, each skipped when not installed: sparse_dot_topn ``sp_matmul_topn`` on
L2-normalised rows (its OpenMP kernel); implicit ``CosineRecommender(K=k).fit``;
scikit-learn ``cosine_similarity`` (sparse in, dense out) with a per-row
argpartition.

``--similarity pearson,jaccard,bm25,...`` also times ``fastrec.similarity_topk``
with each named measure on the same data (contenders "fastrec MEASURE BACKEND"),
so that the ratio column reads each measure's time against cosine's; with
``bm25`` or ``tfidf`` implicit's ``BM25Recommender`` / ``TFIDFRecommender`` fit
joins as that measure's peer.

"agree" is the fraction of sampled items whose list is a valid top-k of the
exact float64 scores of the contender's measure, up to ties within 1e-5 (of the
largest score, for the unbounded BM25).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec.bench import suite
from fastrec.bench._common import (
    RATING_SIZES,
    blas_threads,
    make_size_ratings,
    ml100k_ratings,
    shape_text,
    sizes_with_ml100k,
)
from fastrec.similarity.measures import SIMILARITIES

NAME = "cosine"
TITLE = "item-item cosine top-k"
UNIT = "s"
DEFAULT_SIZES = ("S", "M", "L", "ml-100k")
SIZES = dict(RATING_SIZES)


# --- contenders: each maps (R users x items CSR, k, threads) -> items x items CSR top-k ---


def _fastrec(backend: str, similarity: str = "cosine") -> Callable[[sp.csr_matrix, int, int], sp.csr_matrix]:
    def run(R: sp.csr_matrix, k: int, threads: int) -> sp.csr_matrix:
        import fastrec

        # similarity="cosine" is exactly fastrec.cosine_topk
        return fastrec.similarity_topk(
            R.T, k=k, similarity=similarity, exclude_self=False, n_threads=threads, backend=backend
        )

    return run


def _l2_normalised_items(R: sp.csr_matrix) -> sp.csr_matrix:
    items = R.T.tocsr().astype(np.float32)
    norms = np.sqrt(np.asarray(items.multiply(items).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.diags((1.0 / norms).astype(np.float32)) @ items


def _sparse_dot_topn(R: sp.csr_matrix, k: int, threads: int) -> sp.csr_matrix:
    from sparse_dot_topn import sp_matmul_topn

    items = _l2_normalised_items(R)
    return sp_matmul_topn(items, items.T.tocsr(), top_n=k, sort=True, n_threads=threads)


def _implicit(recommender: str) -> Callable[[sp.csr_matrix, int, int], sp.csr_matrix]:
    def run(R: sp.csr_matrix, k: int, threads: int) -> sp.csr_matrix:
        import implicit.nearest_neighbours

        model = getattr(implicit.nearest_neighbours, recommender)(K=k, num_threads=threads)
        model.fit(R, show_progress=False)
        return model.similarity.tocsr()

    return run


def _sklearn(R: sp.csr_matrix, k: int, threads: int) -> sp.csr_matrix:
    from sklearn.metrics.pairwise import cosine_similarity

    items = R.T.tocsr()
    dense = cosine_similarity(items, dense_output=True)
    top = np.argpartition(-dense, min(k, dense.shape[1] - 1), axis=1)[:, :k]
    rows = np.repeat(np.arange(dense.shape[0]), top.shape[1])
    values = dense[rows, top.ravel()]
    keep = values != 0
    return sp.csr_matrix((values[keep], (rows[keep], top.ravel()[keep])), shape=dense.shape)


# --- data and accuracy ---


PEERS = {  # contender name -> (module that must be installed, function, measure it computes)
    "sparse_dot_topn": ("sparse_dot_topn", _sparse_dot_topn, "cosine"),
    "implicit CosineRecommender": ("implicit", _implicit("CosineRecommender"), "cosine"),
    "sklearn cosine_similarity": ("sklearn", _sklearn, "cosine"),
    "implicit BM25Recommender": ("implicit", _implicit("BM25Recommender"), "bm25"),
    "implicit TFIDFRecommender": ("implicit", _implicit("TFIDFRecommender"), "tfidf"),
}


def exact_scores(R: sp.csr_matrix, sample: np.ndarray, similarity: str = "cosine") -> np.ndarray:
    """(len(sample), n_items) float64 item-item scores of ``similarity``, from its definition.

    The rows are transformed as :func:`fastrec.similarity_topk` documents
    (centring, binarising, BM25 / TF-IDF weights) and scored densely in float64.
    """
    from fastrec.similarity.measures import _MEASURE, DOT, JACCARD, _preparation

    items = R.T.tocsr().astype(np.float64)
    prepare = _preparation(similarity, 1.2, 0.75)
    if prepare is not None:
        items = prepare(items, None)[0]
    dots = (items[sample] @ items.T).toarray()
    if _MEASURE[similarity] == DOT:
        return dots
    squares = np.asarray(items.multiply(items).sum(axis=1)).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        if _MEASURE[similarity] == JACCARD:  # squares are the set sizes of binary rows
            scores = dots / (squares[sample, None] + squares[None, :] - dots)
        else:
            norms = np.sqrt(squares)
            scores = dots / np.outer(norms[sample], norms)
    return np.where(dots != 0, scores, 0.0)


def agreement(
    R: sp.csr_matrix, result: sp.csr_matrix, k: int, sample: np.ndarray, similarity: str = "cosine"
) -> float:
    """Fraction of sampled items whose list is a valid top-k of the exact scores.

    Valid means: the list holds min(k, number of non-zero scores) items, every
    listed item scores within ``tol`` of at least the k-th best exact score, and
    no unlisted item beats the k-th best by more than ``tol``; ``tol`` is 1e-5
    times the larger of 1 and the largest score's magnitude in the row.
    """
    exact = exact_scores(R, sample, similarity)
    result = result.tocsr()
    good = 0
    for row, item in enumerate(sample):
        scores = exact[row]
        tol = 1e-5 * max(1.0, float(np.abs(scores).max(initial=0.0)))
        listed = result.indices[result.indptr[item] : result.indptr[item + 1]]
        n_scored = int((scores != 0).sum())
        kth = np.sort(scores[scores != 0])[::-1][min(k, n_scored) - 1] if n_scored else 0.0
        listed_ok = listed.size == min(k, n_scored) and np.all(scores[listed] >= kth - tol)
        unlisted = np.ones(scores.size, dtype=bool)
        unlisted[listed] = False
        missing_ok = not np.any(scores[unlisted] > kth + tol)
        good += bool(listed_ok and missing_ok)
    return good / len(sample)


# --- the suite interface ---


def add_arguments(parser: Any) -> None:
    """Options of this benchmark."""
    parser.add_argument("--k", type=int, default=50, help="neighbours per item (default 50)")
    parser.add_argument(
        "--ml100k",
        type=Path,
        default=None,
        help="MovieLens 100K folder or u.data, run as size 'ml-100k' "
        "(default: looked up in $FASTREC_DATA and ../shared/data)",
    )
    parser.add_argument(
        "--check-sample", type=int, default=200, help="items whose lists are checked against exact scores"
    )
    parser.add_argument(
        "--similarity",
        "--similarities",
        dest="similarities",
        nargs="+",
        type=_measures,
        metavar="MEASURE",
        default=["cosine"],
        help="measures to time beside cosine, e.g. jaccard or pearson,bm25 "
        f"({', '.join(SIMILARITIES)}; default cosine only)",
    )


def sizes(options: dict[str, Any]) -> dict[str, str]:
    """The synthetic sizes, and MovieLens 100K when it is on this machine."""
    return sizes_with_ml100k(SIZES, options)


def _measures(text: str) -> list[str]:
    """``"jaccard,bm25"`` -> ``["jaccard", "bm25"]``, each checked (an argparse ``type``)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        if name not in SIMILARITIES:
            raise argparse.ArgumentTypeError(f"{name!r} is not one of {', '.join(SIMILARITIES)}")
    return names


def similarities(options: dict[str, Any]) -> list[str]:
    """The measures asked for by ``--similarity``, cosine first (every ratio is against it)."""
    asked = options.get("similarities") or []
    flat = [name for value in asked for name in (value if isinstance(value, list) else _measures(value))]
    return list(dict.fromkeys(["cosine", *flat]))


def contenders(options: dict[str, Any]) -> list[suite.Contender]:
    """fastrec's backends for cosine, then for each other measure; then the installed peers
    of the measures asked for."""
    measures = similarities(options)
    found = [suite.Contender(f"fastrec {b}", peer=False) for b in options["backends"]]
    found += [
        suite.Contender(f"fastrec {m} {b}", peer=False) for m in measures[1:] for b in options["backends"]
    ]
    if options["peers"]:
        found += [
            suite.Contender(name)
            for name, (module, _, measure) in PEERS.items()
            if measure in measures and suite.installed(module)
        ]
    return found


def _contender(name: str) -> tuple[Callable[[sp.csr_matrix, int, int], sp.csr_matrix], str]:
    """The function a contender runs, and the measure whose exact scores check it."""
    if name in PEERS:
        return PEERS[name][1], PEERS[name][2]
    parts = name.split(" ")  # "fastrec BACKEND" or "fastrec MEASURE BACKEND"
    measure = parts[1] if len(parts) == 3 else "cosine"
    return _fastrec(parts[-1], measure), measure


def prepare(size: str, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Write the ratings of ``size`` to ``folder``; the items to check are drawn here."""
    if size == "ml-100k":
        R = ml100k_ratings(options.get("ml100k"))
    else:
        R = make_size_ratings(size)
    path = folder / "ratings.npz"
    sp.save_npz(path, R.tocsr())
    sample = np.random.default_rng(0).choice(
        R.shape[1], size=min(options["check_sample"], R.shape[1]), replace=False
    )
    return {"path": str(path), "k": options["k"], "sample": sample.tolist(), "shape": shape_text(R)}


def measure(contender: str, data: dict[str, Any], threads: int) -> dict[str, Any]:
    """Warm up, then time one top-k computation of ``contender`` (in a worker process)."""
    R = sp.load_npz(data["path"]).tocsr()
    k = int(data["k"])
    fn, measure = _contender(contender)
    with blas_threads(threads):
        fn(R, k, threads)  # warm-up: JIT compilation, thread pools, page faults
        seconds, cpu, result = suite.timed(lambda: fn(R, k, threads))
    agree = agreement(R, result, k, np.asarray(data["sample"], dtype=np.int64), measure)
    return {"seconds": seconds, "cpu_seconds": cpu, "quality": {"agree": round(agree, 4)}}


def main(argv: list[str] | None = None, prog: str = "python -m fastrec.bench cosine") -> int:
    """Run this benchmark alone (see ``--help``)."""
    return suite.main([NAME], sys.argv[1:] if argv is None else argv, prog)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
