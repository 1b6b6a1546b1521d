"""Side-by-side benchmarks of fastrec against its peers: ``python -m fastrec.bench NAME``.

Each benchmark lives in its own module of this package (``cosine``, ...) and
exposes ``main(argv) -> int``.  Peers that are not installed are skipped.
"""

BENCHMARKS = {
    "cosine": "fastrec.bench.cosine",
    "kmeans": "fastrec.bench.kmeans",
    "mf": "fastrec.bench.mf",
    "topn": "fastrec.bench.topn",
}
