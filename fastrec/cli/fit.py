"""``fastrec fit RATINGS``: train a model on a ratings file and save it."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from fastrec.cli._parser import THREADS_HELP, CliError, threads


def add_parser(commands: Any) -> None:
    """Register the ``fit`` subcommand."""
    from fastrec.cli import _data, _features
    from fastrec.cli.models import MODELS

    parser = commands.add_parser(
        "fit", help="train a model on a ratings file and save it", description=__doc__.replace("``", "")
    )
    parser.add_argument("ratings", help="ratings file (CSV, TSV, Parquet, MovieLens) or MovieLens folder")
    parser.add_argument(
        "--model",
        "-m",
        default="mf",
        choices=sorted(MODELS),
        help="model to train (default mf): mf (matrix factorization of ratings), itemknn, "
        "userknn (cosine neighbours), content (item features, see --features); for plays "
        "and clicks als (implicit ALS), bpr or warp (pairwise ranking)",
    )
    parser.add_argument(
        "--out", "-o", default="model.npz", help="where to save the model (default model.npz)"
    )
    parser.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model parameter, e.g. -p n_factors=64 -p lr=0.01 (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--threads", type=threads, metavar="N", help=THREADS_HELP)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    _data.add_data_arguments(parser)
    _features.add_feature_arguments(parser)
    parser.set_defaults(handler=run)


def _check_values(data: Any, args: argparse.Namespace) -> None:
    """Apply ``--transform``; note counts given to a model that weighs them as they are.

    ``_data.load`` has already stopped a rating model on counts.
    """
    import sys

    from fastrec.cli import _data

    note = _data.transform(data, args.transform)
    if note is not None:
        print(f"{note} (the model predicts on that scale)", flush=True)
        return
    why = None if args.transform == "none" or args.implicit else _data.count_like(data.matrix.data)
    if why is None:
        return
    print(
        f"note: {why}; {args.model} weighs them as they are (--transform log1p damps the heaviest users)",
        file=sys.stderr,
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    """Read the ratings, fit the model, save it; prints what it did."""
    from fastrec.cli import _data, _features
    from fastrec.cli.models import FEATURE_MODELS, model_class, parameter_names, parse_params

    if args.model not in FEATURE_MODELS and args.features is not None:
        raise CliError(f"--features is for --model {' or '.join(FEATURE_MODELS)}, not {args.model}")
    if args.features is None and (args.feature_item_col or args.feature_cols):
        raise CliError("--feature-item-col and --feature-cols describe --features FILE; pass it")
    cls = model_class(args.model)
    params = parse_params(args.param, cls)
    names = parameter_names(cls)
    explicit = set(params)
    for key, value in (
        ("seed", args.seed),
        ("random_state", args.seed),
        ("n_threads", args.threads),
        ("verbose", not args.quiet),
    ):
        if key in names and key not in params and value is not None:
            params[key] = value
    if cls.__name__ == "MatrixFactorization" and "verbose" not in explicit and not args.quiet:
        params["verbose"] = None  # a progress bar only when stderr is a terminal, not in logs
    start = time.perf_counter()
    data = _data.load(args.ratings, args)
    print(f"read {data!r} in {time.perf_counter() - start:.2f} s", flush=True)
    _check_values(data, args)
    if args.model in FEATURE_MODELS:
        params.update(_features.load(args, data))
    model = cls(**params)
    start = time.perf_counter()
    model.fit(data)
    elapsed = time.perf_counter() - start
    summary = f"trained {cls.__name__} in {elapsed:.2f} s"
    history = getattr(model, "history_", None)
    if isinstance(history, dict) and history.get("train_rmse"):
        summary += f"; train RMSE {history['train_rmse'][-1]:.4f}"
    print(summary, flush=True)
    out = args.out
    directory = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(directory):
        raise CliError(f"cannot save to {out!r}: the folder {directory!r} does not exist")
    model.save(out)
    saved = out if os.path.exists(out) else out + ".npz"  # np.savez appends .npz
    print(
        f"saved {saved} ({os.path.getsize(saved) / 1e6:.1f} MB); next: fastrec recommend "
        f"{saved} --users ID,ID,... --out recommendations.csv"
    )
    return 0
