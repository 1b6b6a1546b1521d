"""``fastrec demo``: the whole library on one dataset, as a readable terminal report.

Generated ratings by default (no files needed), or a MovieLens release or the
Last.fm play counts with ``--data PATH`` (titles or artist names shown).  The
report is a list of sections; each is a function of the shared :class:`Story`
that prints its part, so adding one is one function and one entry in
``SECTIONS``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

# Generated data of each --size: (users, items, ratings, factors, epochs).
DEMO_SIZES = {
    "small": (600, 500, 20_000, 16, 10),
    "medium": (6_040, 3_706, 500_000, 64, 20),
}
TITLE_WIDTH = 38
RANKING_K = 10  # length of the recommendation lists the ranking metrics score


@dataclass
class Story:
    """What the sections share: the data, its split, the models fitted so far, the output."""

    data: Any  # fastrec.datasets.Interactions
    train: Any
    test: Any
    args: argparse.Namespace
    out: TextIO | None = None  # None: sys.stdout at the time of printing (redirects follow)
    model: Any = None  # the MatrixFactorization, once fitted
    extras: dict[str, Any] = field(default_factory=dict)
    counts: str | None = None  # why the values look like play counts, when they do

    @property
    def noun(self) -> str:
        """What one stored value is called."""
        return "interactions" if self.counts else "ratings"

    def print(self, text: str = "") -> None:
        print(text, file=sys.stdout if self.out is None else self.out, flush=True)

    def wrap(self, head: str, entries: list[str], indent: int = 6, width: int = 100) -> None:
        """``head`` and the ``entries`` joined by ", ", indented, wrapped at ``width`` columns.

        Lines break only between entries, so a title holding ", " stays whole.
        """
        line = " " * indent + head
        for n, entry in enumerate(entries):
            piece = entry if n == 0 else ", " + entry
            if n and len(line) + len(piece) > width:
                self.print(line + ",")
                line, piece = " " * (indent + 2), entry
            line += piece
        self.print(line)

    def label(self, index: int) -> str:
        """A short readable name of item column ``index``."""
        text = self.data.item_labels[index]
        if self.data.items is None:  # no titles: make bare ids readable
            text = f"item {text}"
        return text if len(text) <= TITLE_WIDTH else text[: TITLE_WIDTH - 1] + "…"

    def item_label(self, raw_id: Any) -> str:
        return self.label(int(self.data.item_index([raw_id])[0]))


def _rmse_mae(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    error = np.asarray(pred, dtype=np.float64) - truth
    return float(np.sqrt(np.mean(error**2))), float(np.mean(np.abs(error)))


# --- sections -------------------------------------------------------------------------


def data_section(story: Story) -> None:
    """What the data is and how it was split."""
    data, train, test = story.data, story.train, story.test
    counts = np.diff(data.matrix.indptr)
    popularity = np.bincount(data.matrix.indices, minlength=data.n_items)
    story.print(story.extras.get("described", repr(data)))
    if story.counts:
        skipped = ", ".join(
            str(number) for number, (_, section) in enumerate(SECTIONS, 1) if section in RATING_SECTIONS
        )
        story.print(
            f"note: {story.counts}. The demo weighs each interaction by log(1 + value) "
            f"and skips the parts that model rating values ({skipped})."
        )
    story.print(
        f"{story.noun} per user: median {int(np.median(counts))}, max {counts.max():,}; "
        f"{story.noun} per item: median {int(np.median(popularity))}, max "
        f"{popularity.max():,} (a long tail)"
    )
    story.print(
        f"held out {test.nnz:,} {story.noun} ({100 * test.nnz / data.nnz:.0f}%, at random) "
        f"for testing; training on {train.nnz:,}"
    )


def neighbours_section(story: Story) -> None:
    """Item-item cosine neighbours of the most popular items."""
    import fastrec

    k = story.args.k
    start = time.perf_counter()
    neighbours = fastrec.cosine_topk(story.train.matrix.T, k=k)
    elapsed = time.perf_counter() - start
    story.print(
        f"cosine_topk(R.T, k={k}): {neighbours.nnz:,} neighbour pairs of "
        f"{story.data.n_items:,} items in {elapsed:.3f} s"
    )
    popularity = np.bincount(story.train.matrix.indices, minlength=story.data.n_items)
    for item in np.argsort(-popularity, kind="stable")[: story.args.show]:
        row = slice(neighbours.indptr[item], neighbours.indptr[item + 1])
        similar = [
            f"{story.label(j)} ({s:.2f})"
            for j, s in zip(neighbours.indices[row][:3], neighbours.data[row][:3])
        ]
        story.print(f"  {story.label(item)} [{popularity[item]:,} {story.noun}]")
        story.wrap("-> ", similar)


def mf_section(story: Story) -> None:
    """A biased matrix factorization trained by SGD, with a progress bar on stderr."""
    import fastrec
    from fastrec import _runtime

    args = story.args
    model = fastrec.MatrixFactorization(
        n_factors=args.factors,
        n_epochs=args.epochs,
        random_state=args.seed,
        verbose=False if args.quiet else None,  # None: a progress bar only on a terminal
    )
    start = time.perf_counter()
    model.fit(story.train, validation=story.test)
    elapsed = time.perf_counter() - start
    story.model = model
    history = model.history_
    updates = story.train.nnz * model.epochs_trained_ / elapsed / 1e6
    story.print(
        f"MatrixFactorization(n_factors={args.factors}, n_epochs={args.epochs}): "
        f"{elapsed:.2f} s ({updates:.1f} M updates/s incl. validation, backend "
        f"{_runtime.resolve_backend(model.backend)})"
    )
    story.print(
        f"  train RMSE {history['train_rmse'][0]:.4f} after epoch 1 -> "
        f"{history['train_rmse'][-1]:.4f} after epoch {model.epochs_trained_}; "
        f"validation RMSE {history['valid_rmse'][-1]:.4f}"
    )


def rating_metrics_section(story: Story) -> None:
    """RMSE and MAE on the held-out ratings, beside two simple baselines."""
    train = story.train.matrix
    users, items, truth = story.test.to_triples()
    truth = truth.astype(np.float64)
    mean = float(train.data.mean())
    counts = np.bincount(train.indices, minlength=train.shape[1])
    sums = np.bincount(train.indices, weights=train.data, minlength=train.shape[1])
    item_mean = np.where(counts > 0, sums / np.maximum(counts, 1), mean)
    columns = story.test.matrix.indices
    rows = [
        ("global mean", np.full(truth.size, mean)),
        ("item mean", item_mean[columns]),
        (f"MF ({story.args.factors} factors)", story.model.predict(users, items)),
    ]
    story.print(f"{'model':24s} {'RMSE':>8s} {'MAE':>8s}   on {truth.size:,} held-out ratings")
    for name, pred in rows:
        rmse, mae = _rmse_mae(pred, truth)
        story.print(f"{name:24s} {rmse:8.4f} {mae:8.4f}")


def ranking_metrics_section(story: Story) -> None:
    """Top-10 lists of MF and ItemKNN scored against the held-out ratings (fastrec.evaluate)."""
    import fastrec

    k, n = story.args.k, RANKING_K
    knn = fastrec.ItemKNN(k=k)
    start = time.perf_counter()
    knn.fit(story.train)
    fit_seconds = time.perf_counter() - start
    story.extras["itemknn"] = knn
    rows = [(f"MF ({story.args.factors} factors)", story.model, None), (f"ItemKNN (k={k})", knn, fit_seconds)]
    if story.counts:  # behaviour data: ALS, which takes the values as confidence, stands in for MF
        als = _behaviour_model(story)
        if als is not None:
            rows.append((f"ALS ({story.args.factors} factors)", *als))
    rows = [row for row in rows if row[1] is not None]  # MF is skipped on play counts
    columns = [
        ("precision", "prec"),
        ("recall", "recall"),
        ("ndcg", "NDCG"),
        ("map", "MAP"),
        ("hit_rate", "hit"),
    ]
    story.print(
        f"{'model':22s}"
        + "".join(f"{f'{label}@{n}':>10s}" for _, label in columns)
        + f"{'coverage':>10s}{'seconds':>9s}"
    )
    users = 0
    for name, model, fitted in rows:
        start = time.perf_counter()
        result = fastrec.evaluate(model, story.train, story.test, k=n)
        seconds = time.perf_counter() - start + (fitted or 0.0)
        users = result["n_users"]
        story.print(
            f"{name:22s}"
            + "".join(f"{result[f'{key}@{n}']:10.4f}" for key, _ in columns)
            + f"{result[f'coverage@{n}']:10.4f}{seconds:9.2f}"
        )
    story.print(
        f"  means over {users:,} test users; relevant: every held-out rating; training items "
        "are never recommended"
    )
    story.print(
        "  hit: users with a relevant item in their list; coverage: share of the items recommended to anyone"
    )
    if story.model is not None:
        story.print(
            "  seconds: evaluation (ItemKNN: with its fit). MF learns rating values, not "
            "which items users pick"
        )
    else:
        story.print("  seconds: evaluation with the fit")


def _behaviour_model(story: Story) -> tuple[Any, float] | None:
    """``fastrec.ALS`` fitted on the training part and its fit seconds; None (said) where absent."""
    import fastrec

    cls = getattr(fastrec, "ALS", None)
    if cls is None:
        story.print("  ALS (plays as confidence): not available in this installation")
        return None
    model = cls(n_factors=story.args.factors, random_state=story.args.seed)
    start = time.perf_counter()
    model.fit(story.train)
    story.extras["als"] = model
    return model, time.perf_counter() - start


def segments_section(story: Story) -> None:
    """KMeans on the users' MF factors, each segment described by fastrec.cluster.profile."""
    import fastrec

    model, train = story.model, story.train
    rows = train.user_index(model.user_ids_)  # model rows -> data rows
    factors = np.ascontiguousarray(model.user_factors_)
    n_segments = min(story.args.segments, factors.shape[0])
    start = time.perf_counter()
    km = fastrec.KMeans(n_clusters=n_segments, random_state=story.args.seed, n_init=3).fit(factors)
    elapsed = time.perf_counter() - start
    interactions = train.matrix[rows]
    side: dict[str, np.ndarray] = {
        "ratings": np.diff(interactions.indptr).astype(np.float64),
        "mean rating": np.asarray(interactions.sum(axis=1)).ravel()
        / np.maximum(np.diff(interactions.indptr), 1),
    }
    users = story.data.users
    if users is not None and "age" in users.columns:
        side["age"] = users["age"].to_numpy(dtype=np.float64)[rows]
    # Lift favours rare items (one fan makes a niche film "typical"); describe the
    # segments by the items a fair number of users rated.
    counts = np.bincount(interactions.indices, minlength=interactions.shape[1])
    popular = np.flatnonzero(counts >= max(10.0, float(np.quantile(counts, 0.8))))
    labels = [story.label(int(j)) for j in popular]
    profiles = fastrec.cluster.profile(km.labels_, interactions[:, popular], labels, top=3, side=side)
    story.print(
        f"KMeans(n_clusters={n_segments}) on {factors.shape[0]:,} users x "
        f"{factors.shape[1]} MF factors: {elapsed:.2f} s, inertia {km.inertia_:.4g}"
    )
    for p in sorted(profiles, key=lambda p: -p.size):
        means = ", ".join(f"{name} {p.side_means[name]:.3g}" for name in side)
        story.print(f"  segment {p.cluster}: {p.size:,} users ({100 * p.share:.0f}%); {means}")
        if p.top:
            story.wrap(
                "over-represented among popular items: ", [f"{name} (x{lift:.1f})" for name, _, lift in p.top]
            )


def topn_section(story: Story) -> None:
    """Top-N recommendations of MF and ItemKNN (seen items excluded) for a few users."""
    model, data, train = story.model, story.data, story.train
    counts = np.diff(train.matrix.indptr)
    active = np.flatnonzero(counts >= 5)
    rng = np.random.default_rng(story.args.seed)
    chosen = rng.choice(
        active if active.size else np.arange(data.n_users), size=min(3, data.n_users), replace=False
    )
    raw_users = data.user_ids[np.sort(chosen)]
    lists = [("MF", *model.recommend(raw_users, n=5))] if model is not None else []
    if "itemknn" in story.extras:  # fitted by the ranking metrics section
        lists.append(("ItemKNN", *story.extras["itemknn"].recommend(raw_users, n=5)))
    if "als" in story.extras:  # fitted there too, on behaviour data
        lists.append(("ALS", *story.extras["als"].recommend(raw_users, n=5)))
    users = data.users
    for number, user in enumerate(raw_users):
        u = int(data.user_index([user])[0])
        about = ""
        if users is not None:
            facts = [str(users.iloc[u][c]) for c in ("age", "gender", "occupation") if c in users.columns]
            about = f" ({', '.join(facts)})" if facts else ""
        span = slice(train.matrix.indptr[u], train.matrix.indptr[u + 1])
        rated = train.matrix.indices[span]
        best = rated[np.argsort(-train.matrix.data[span], kind="stable")[:3]]
        story.print(f"  user {user}{about}, {rated.size} {story.noun}")
        story.wrap("played most: " if story.counts else "rated highest: ", [story.label(j) for j in best])
        for name, items, scores in lists:
            story.wrap(
                f"{name + ':':8s} ",
                [
                    f"{story.item_label(i)} ({s:.2f})"
                    for i, s in zip(items[number], scores[number])
                    if np.isfinite(s)
                ],
            )


# Sections that model rating values: skipped on play counts and clicks.
RATING_SECTIONS = (mf_section, rating_metrics_section, segments_section)

# (heading, section)
SECTIONS: list[tuple[str, Callable[[Story], None]]] = [
    ("Data", data_section),
    ("Item-item neighbours (cosine_topk)", neighbours_section),
    ("Matrix factorization (SGD)", mf_section),
    ("Rating metrics (held-out ratings)", rating_metrics_section),
    (f"Ranking metrics (top-{RANKING_K} lists against the held-out ratings)", ranking_metrics_section),
    ("User segments (KMeans on MF user factors)", segments_section),
    ("Top-N recommendations (seen items excluded)", topn_section),
]


# --- command ----------------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    """Register the ``demo`` subcommand."""
    from fastrec.cli._parser import THREADS_HELP, threads

    parser = commands.add_parser(
        "demo",
        help="neighbours, MF, metrics, segments and top-N on one dataset",
        description=__doc__.split("\n\n")[0].replace("``", ""),
    )
    parser.add_argument(
        "--data",
        help="a MovieLens or Last.fm (hetrec2011-lastfm-2k) folder, or a ratings file "
        "(default: generated ratings)",
    )
    parser.add_argument(
        "--size",
        choices=sorted(DEMO_SIZES),
        default="medium",
        help="size of the generated data (default medium: 6,040 x 3,706, 500,000 ratings)",
    )
    parser.add_argument("--users", type=int, help="generated users (overrides --size)")
    parser.add_argument("--items", type=int, help="generated items (overrides --size)")
    parser.add_argument("--ratings", type=int, help="generated ratings (overrides --size)")
    parser.add_argument("--factors", type=int, help="MF factors (default by size)")
    parser.add_argument("--epochs", type=int, help="MF epochs (default by size)")
    parser.add_argument("--k", type=int, default=20, help="neighbours per item (default 20)")
    parser.add_argument("--segments", type=int, default=6, help="KMeans segments (default 6)")
    parser.add_argument("--show", type=int, default=3, help="items whose neighbours are shown")
    parser.add_argument(
        "--test-fraction", type=float, default=0.2, help="share of ratings held out (default 0.2)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=threads, metavar="N", help=THREADS_HELP)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def _check(args: argparse.Namespace) -> None:
    from fastrec.cli._parser import CliError

    for name in ("users", "items", "ratings", "factors", "epochs", "k", "segments"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CliError(f"--{name} must be >= 1, got {value}")
    if args.show < 0:
        raise CliError(f"--show must be >= 0, got {args.show}")
    if not 0.0 < args.test_fraction < 1.0:
        raise CliError(f"--test-fraction must be between 0 and 1, got {args.test_fraction}")


def load_story(args: argparse.Namespace) -> Story:
    """The data (loaded or generated) and its random split."""
    from fastrec.datasets import Interactions, make_ratings

    n_users, n_items, n_ratings, factors, epochs = DEMO_SIZES[args.size]
    args.factors = args.factors or factors
    args.epochs = args.epochs or epochs
    if args.data is not None:
        from fastrec.cli import _data

        options = argparse.Namespace(
            format="auto",
            user_col=None,
            item_col=None,
            rating_col=None,
            timestamp_col=None,
            sep=None,
            no_header=False,
            implicit=False,
        )
        data = _data.load(args.data, options)
    else:
        n_users, n_items = args.users or n_users, args.items or n_items
        n_ratings = min(args.ratings or n_ratings, n_users * n_items)
        R = make_ratings(n_users, n_items, n_ratings, seed=args.seed)
        data = Interactions(R, np.arange(n_users), np.arange(n_items), name="generated")
    held_out = np.random.default_rng(args.seed).random(data.nnz) < args.test_fraction
    story = Story(data, data.subset(~held_out), data.subset(held_out), args)
    if args.data is not None:
        from fastrec.cli._data import count_like, transform

        story.counts = count_like(data.matrix.data)
        story.extras["described"] = repr(data)  # before the transform below
        if story.counts:  # raw counts let one heavy listener decide every cosine
            for part in (data, story.train, story.test):
                transform(part, "log1p")
    return story


def run(args: argparse.Namespace) -> int:
    """Run every section in turn, timing each."""
    import fastrec

    _check(args)
    if args.threads is not None:
        fastrec.set_num_threads(args.threads)
    total = time.perf_counter()
    print(
        f"fastrec {fastrec.__version__} demo: backend {fastrec.available_backends()[0]}, "
        f"SIMD {fastrec.simd_level()}, {fastrec.get_num_threads()} threads",
        flush=True,
    )
    story = load_story(args)
    for number, (heading, section) in enumerate(SECTIONS, 1):
        story.print()
        story.print(f"== {number}. {heading} ==")
        if story.counts and section in RATING_SECTIONS:
            story.print(
                "skipped: this part models rating values, and these are counts (see 1. "
                "Data). Models for counts: fastrec fit DATA --model als (or bpr, warp); "
                "MF on them: fastrec fit DATA --model mf --transform log1p"
            )
            continue
        section(story)
    story.print()
    story.print(
        f"done in {time.perf_counter() - total:.1f} s. Next: `fastrec fit RATINGS` and "
        "`fastrec recommend MODEL` on your own data; `fastrec bench all` against peers."
    )
    return 0
