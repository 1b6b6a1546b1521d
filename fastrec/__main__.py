"""The ``fastrec`` command line: ``fastrec demo``, ``fastrec info``, ``fastrec bench NAME``."""

from __future__ import annotations

import argparse
import sys
import time


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    import fastrec
    from fastrec.datasets import make_ratings

    print(f"fastrec {fastrec.__version__} demo  (backend: {fastrec.available_backends()[0]}, "
          f"SIMD: {fastrec.simd_level()}, threads: {fastrec.get_num_threads()})\n")
    start = time.perf_counter()
    ratings = make_ratings(args.users, args.items, args.ratings, seed=args.seed)
    print(f"generated {ratings.shape[0]:,} users x {ratings.shape[1]:,} items, "
          f"{ratings.nnz:,} ratings (power-law activity and popularity) "
          f"in {time.perf_counter() - start:.2f} s")

    fastrec.cosine_topk(ratings.T, k=args.k)  # first call may compile Numba kernels
    start = time.perf_counter()
    neighbours = fastrec.cosine_topk(ratings.T, k=args.k)
    elapsed = time.perf_counter() - start
    print(f"item-item cosine top-{args.k}: {neighbours.nnz:,} neighbour pairs in {elapsed:.3f} s\n")

    popularity = np.diff(ratings.tocsc().indptr)
    shown = np.argsort(-popularity, kind="stable")[: args.show]
    for item in shown:
        row = slice(neighbours.indptr[item], neighbours.indptr[item + 1])
        pairs = ", ".join(
            f"{j} ({s:.3f})" for j, s in zip(neighbours.indices[row][:5], neighbours.data[row][:5])
        )
        print(f"  item {item:5d} ({popularity[item]:5d} ratings) -> {pairs}")
    print("\nNext: `python -m fastrec.bench cosine` compares these kernels with their peers.")
    return 0


def _info(_: argparse.Namespace) -> int:
    import fastrec

    fastrec.show_config()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":  # the benchmark modules parse their own options
        from fastrec.bench.__main__ import main as bench_main

        return bench_main(argv[1:])
    parser = argparse.ArgumentParser(prog="fastrec", description="fast recommender kernels")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="item-item neighbours on generated ratings")
    demo.add_argument("--users", type=int, default=6040)
    demo.add_argument("--items", type=int, default=3706)
    demo.add_argument("--ratings", type=int, default=500_000)
    demo.add_argument("--k", type=int, default=20)
    demo.add_argument("--show", type=int, default=5, help="items whose neighbours are printed")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=_demo)
    info = commands.add_parser("info", help="version, backends, SIMD, threads and BLAS")
    info.set_defaults(handler=_info)
    commands.add_parser("bench", help="side-by-side benchmarks: fastrec bench NAME --help")
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
