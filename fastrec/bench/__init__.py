"""Side-by-side benchmarks of fastrec against its peers: ``fastrec bench NAME``.

Each benchmark is one module of this package implementing the interface that
:mod:`fastrec.bench.suite` describes (contenders, sizes, ``prepare`` and
``measure``), plus one line in ``BENCHMARKS``.  ``all`` runs the registered
names in ``ORDER`` and skips the ones that are not registered.  Peers that are
not installed are skipped.
"""

BENCHMARKS = {
    "cosine": "fastrec.bench.cosine",
    "kmeans": "fastrec.bench.kmeans",
    "mf": "fastrec.bench.mf",
    "knn": "fastrec.bench.knn",
    "metrics": "fastrec.bench.metrics",
    "topn": "fastrec.bench.topn",
    "roofline": "fastrec.bench.roofline",
    "implicit": "fastrec.bench.implicit",
    "dask": "fastrec.bench.dask_bench",
}

# The order of ``all``; names not in BENCHMARKS are skipped.  ``dask`` has no default
# sizes, so ``all`` passes it by: it starts clusters and needs the dask extra.
ORDER = ("cosine", "mf", "kmeans", "knn", "metrics", "topn", "implicit")
