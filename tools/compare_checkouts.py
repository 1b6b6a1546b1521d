"""Before/after timing of the L-size kernels: two checkouts alternated in fresh processes.

Usage: python tools/compare_checkouts.py BEFORE_TREE AFTER_TREE [ROUNDS] [KERNELS]

Build each checkout in place first (python setup.py build_ext --inplace).  KERNELS is a
comma list of cosine, topn, mf, kmeans (default all); the data are generated once into
/tmp/fastrec_compare_data.npz.  Prints every time and the median ratio after / before.
Each measurement runs in its own process started in the tree's root, so that tree's
fastrec (built in place) is the one imported.
"""

import json
import os
import subprocess
import sys

DATA = "/tmp/fastrec_compare_data.npz"

PREP = r"""
import numpy as np, scipy.sparse as sp
from fastrec.datasets import make_ratings, make_user_embeddings
R = make_ratings(69878, 10677, 10_000_000, seed=0).tocsr()
rng = np.random.default_rng(0)
U = rng.normal(size=(69878, 64)).astype(np.float32)
V = rng.normal(size=(10677, 64)).astype(np.float32)
X, _ = make_user_embeddings(1_000_000, 32, n_segments=8, seed=0)
np.savez(DATA_PATH, indptr=R.indptr, indices=R.indices, data=R.data, shape=R.shape, U=U, V=V, X=X)
""".replace("DATA_PATH", repr(DATA))

MEASURE = r"""
import json, sys, time
import numpy as np, scipy.sparse as sp
import fastrec
kernel = sys.argv[1]
a = np.load(DATA_PATH)
R = sp.csr_matrix((a["data"], a["indices"], a["indptr"]), shape=tuple(a["shape"]))
def timed(f):
    start = time.perf_counter(); f(); return time.perf_counter() - start
if kernel == "cosine":
    t = timed(lambda: fastrec.cosine_topk(R.T, k=50, n_threads=2))
elif kernel == "topn":
    U, V = a["U"], a["V"]
    t = timed(lambda: fastrec.topn(U, V, n=10, exclude=R, n_threads=2))
elif kernel == "mf":
    coo = R.tocoo()
    keep = np.random.default_rng(0).random(coo.nnz) < 0.8
    train = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=R.shape)
    # the default seed: checkouts differ in the name of the seed parameter
    mf = fastrec.MatrixFactorization(n_factors=100, n_epochs=20, n_threads=2)
    t = timed(lambda: mf.fit(train))
elif kernel == "kmeans":
    X = a["X"]
    # init is given, so no seed is needed (and checkouts before random_state took seed=)
    km = fastrec.KMeans(n_clusters=256, init=X[::3900][:256].copy(), max_iter=5, tol=0.0,
                        n_threads=2)
    t = timed(lambda: km.fit(X)) / max(1, km.n_iter_)
print(json.dumps({"kernel": kernel, "seconds": t, "file": fastrec.__file__}))
""".replace("DATA_PATH", repr(DATA))


def main():
    trees = sys.argv[1:3]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    kernels = sys.argv[4].split(",") if len(sys.argv) > 4 else ["cosine", "topn", "mf", "kmeans"]
    if not os.path.exists(DATA):
        subprocess.run([sys.executable, "-c", PREP], cwd=trees[1], check=True)
    times = {(k, t): [] for k in kernels for t in trees}
    for r in range(rounds):
        for kernel in kernels:
            for tree in trees if r % 2 == 0 else trees[::-1]:
                out = subprocess.run(
                    [sys.executable, "-c", MEASURE, kernel],
                    cwd=tree,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                result = json.loads(out.strip().splitlines()[-1])
                assert result["file"].startswith(tree), result
                times[(kernel, tree)].append(result["seconds"])
                print(kernel, tree, f"{result['seconds']:.4f}", flush=True)
    import statistics

    print("\nkernel   before(median)  after(median)  after/before")
    for kernel in kernels:
        b = statistics.median(times[(kernel, trees[0])])
        a = statistics.median(times[(kernel, trees[1])])
        print(
            f"{kernel:8s} {b:12.4f} {a:14.4f} {a / b:12.3f}   "
            f"before {times[(kernel, trees[0])]} after {times[(kernel, trees[1])]}"
        )


main()
