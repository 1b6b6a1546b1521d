"""First-call time of each Numba kernel: in a fresh cache, then loaded from the cache.

Usage: python tools/numba_startup.py [KERNELS]

KERNELS is a comma list of cosine, topn, kmeans, mf, knn, metrics (default all).
Each kernel's first call runs in its own process with an empty NUMBA_CACHE_DIR
(what a fresh environment pays once), then again in a new process with the cache
that run left (what every later process pays).  Prints wall and CPU seconds of
the first call on small data, so the time is the compile (or the cache load).
"""

import json
import os
import subprocess
import sys
import tempfile

CALLS = {
    "cosine": "fastrec.cosine_topk(R, k=10, backend='numba')",
    "topn": "fastrec.topn(U, V, n=10, exclude=R, backend='numba')",
    "kmeans": "fastrec.KMeans(4, n_init=1, max_iter=3, backend='numba').fit(U)",
    "mf": "fastrec.MatrixFactorization(n_factors=8, n_epochs=1, backend='numba').fit(R)",
    "knn": "fastrec.ItemKNN(k=5, backend='numba').fit(R).recommend(np.arange(10), n=5)",
    "metrics": "fastrec.metrics.ranking_metrics(fastrec.topn(U, V, n=5, backend='numpy')[0], R, k=5, "
    "backend='numba')",
}

MEASURE = r"""
import json, time
import numpy as np, scipy.sparse as sp
import fastrec
rng = np.random.default_rng(0)
R = sp.random(200, 100, density=0.05, format="csr", random_state=0, dtype=np.float32)
R.data[:] = rng.integers(1, 6, R.nnz)
U = rng.normal(size=(200, 16)).astype(np.float32)
V = rng.normal(size=(100, 16)).astype(np.float32)
wall, cpu = time.perf_counter(), time.process_time()
CALL
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))
"""


def first_call(kernel: str, cache: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    out = subprocess.run(
        [sys.executable, "-c", MEASURE.replace("CALL", CALLS[kernel])],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    kernels = sys.argv[1].split(",") if len(sys.argv) > 1 else list(CALLS)
    print("| kernel | fresh: wall s | fresh: CPU s | cached: wall s | cached: CPU s |")
    print("|---|---:|---:|---:|---:|")
    for kernel in kernels:
        with tempfile.TemporaryDirectory() as cache:
            fresh = first_call(kernel, cache)
            cached = first_call(kernel, cache)
        print(
            f"| {kernel} | {fresh['wall']:.1f} | {fresh['cpu']:.1f} | "
            f"{cached['wall']:.2f} | {cached['cpu']:.2f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
