"""``fastrec bench dask``: fastrec on Dask beside Spark MLlib ALS and dask-ml KMeans, and a scaling run.

Three parts (``--only mf,kmeans,scale``; ``mf`` and ``kmeans`` by default,
``scale`` too when ``--data-dir`` is given or under ``--quick``):

- **mf** (``--size M,L``): the synthetic ratings of the MF benchmark, split
  80/20 at random; the training part written once as Parquet partitions (rows
  shuffled), the test part (pairs whose user and item are in the training
  part) as one Parquet file.  fastrec ``MatrixFactorization`` on one machine,
  ``fastrec.dask.fit`` (DSGD, ``n_blocks`` the cluster's thread count unless
  ``--blocks``) on a LocalCluster of each ``--workers`` count, and Spark MLlib
  ``ALS`` in local mode (``--spark-iterations``, ``--spark-reg``,
  ``coldStartStrategy="drop"``), all at rank ``--factors`` and on the same
  cores (the thread count).  The time is end to end: reading the Parquet
  files into the engine and fitting; starting the engine (cluster or Spark
  session) and a warm-up fit on tiny data are timed apart ("start s").  Test
  RMSE of every engine with predictions clipped to 1..5.
- **kmeans** (1,000,000 x 32 float32, k=256): the embeddings of the KMeans
  benchmark's L shape, stored as .npy chunks; every contender starts from the
  same initial centres and runs ``--kmeans-iterations`` Lloyd iterations
  (``tol=0``): fastrec ``KMeans`` on one machine, ``fastrec.dask.fit`` and
  dask-ml ``KMeans`` on the same LocalCluster.  The time reads the chunks
  (persisted on the cluster) and fits; "s/iter" is the difference of a fit of
  that many iterations and a fit of one, per iteration, and "set-up s" the rest
  of the end-to-end time.  The final inertia is recomputed from every
  contender's centres by one float64 routine (dask-ml moves the centre of a
  cluster that loses all its points to the origin where fastrec re-seeds it,
  so the two can end apart from the same start).
- **scale** (``--scale-rows``, 100M by default): power-law users and items and
  1-5 ratings generated partition by partition into ``--data-dir`` (kept and
  reused while its manifest matches), then ``fastrec.dask.fit`` of
  ``MatrixFactorization`` (DSGD) and ``ALS`` on each ``--workers`` count with
  ``--memory-limit`` per worker, beside the same fits on one machine where the
  data fit in memory (a row saying so where they do not); RMSE on a held-out
  sample drawn from the same model.

Peak memory is the largest resident set of each worker process (``VmHWM`` on
Linux, read on the workers; on one machine, of the measuring process; for Spark, the
resident memory of the driver's JVM and Python at the end of the fit); the scale
part also gives the client's (what a fit gathers: the model, DSGD's ratings).  Each
measurement runs in its own process and starts its own cluster
(``--no-processes``: threads in that process, for smoke tests); rounds are
interleaved as in every fastrec benchmark.  A peer that is not installed gets a
row saying so and the pip command.  Ratios: mf against Spark MLlib ALS, kmeans
against dask-ml on the same workers, scale against one machine; every part also
against fastrec on one machine.  ``--quick`` runs tiny sizes of every part.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastrec.bench import suite
from fastrec.bench._common import RATING_SIZES, format_table, make_size_ratings, shape_text

NAME = "dask"
TITLE = "fastrec on Dask beside Spark MLlib ALS and dask-ml KMeans (end-to-end time)"
UNIT = "s end to end"
PARTS = ("mf", "kmeans", "scale")

# size -> (n, d, k) of the KMeans part
KMEANS_SHAPES = {
    "kmeans-XS": (4_000, 8, 16),
    "kmeans-1M": (1_000_000, 32, 256),
    "kmeans-10M": (10_000_000, 32, 256),
}
# size -> (rows, users, items, partitions) of the scaling part
SCALE_SHAPES = {"scale-XS": (20_000, 500, 200, 4), "scale-100M": (100_000_000, 1_000_000, 100_000, 20)}
SIZES = {
    **{f"mf-{s}": f"MF, {RATING_SIZES[s]}" for s in ("XS", "M", "L")},
    **{name: f"KMeans, {n:,} x {d} float32, k={k}" for name, (n, d, k) in KMEANS_SHAPES.items()},
    "scale-XS": "scale, 20,000 interactions (smoke test)",
    "scale-100M": "scale, 100,000,000 interactions, 1,000,000 users x 100,000 items",
}
# ``fastrec bench all`` leaves this benchmark out: it starts clusters and needs the dask extra.
DEFAULT_SIZES: tuple[str, ...] = ()
QUICK_SIZES = ("mf-XS", "kmeans-XS", "scale-XS")

SPARK = "Spark MLlib ALS"
DASK_ML = "dask-ml KMeans"
PEER_PACKAGES = {
    "spark": ("pyspark", "pip install pyspark (and a JDK 17)"),
    "dask-ml": ("dask_ml", "pip install dask-ml"),
}
MANIFEST = "fastrec-dataset.json"
MB = 1024.0**2


# --- the generated interactions (Parquet partitions) ------------------------------------------


def write_interactions(
    folder: str | os.PathLike,
    n_rows: int,
    n_users: int,
    n_items: int,
    n_partitions: int,
    *,
    n_heldout: int | None = None,
    seed: int = 0,
    rank: int = 10,
    noise: float = 0.75,
    user_exponent: float = 0.75,
    item_exponent: float = 1.0,
) -> dict[str, Any]:
    """Generate explicit ratings as Parquet partitions, one partition in memory at a time.

    Users and items follow the power laws of :func:`fastrec.datasets.make_ratings`
    (probability proportional to ``(rank + 10) ** -exponent`` of a random
    activity / popularity rank) and the ratings its low-rank model, rounded and
    clipped to 1..5.  Pairs are drawn independently, so a popular pair may occur
    more than once (``fastrec.dask.interactions`` keeps the last, as
    ``Interactions.from_frame`` does).  Peak memory is about 40 bytes per row of
    one partition plus the model (``(n_users + n_items) * (rank + 1)`` float32).

    Parameters
    ----------
    folder : path
        Receives ``train/part-00000.parquet`` ... (columns ``user`` int32,
        ``item`` int32, ``rating`` float32), ``heldout.parquet`` (the same
        columns, rows drawn from the same model with other seeds) and a manifest.  A folder
        whose manifest matches the arguments is reused as it is.
    n_rows, n_users, n_items, n_partitions : int
        Rows in all, id ranges ``[0, n_users)`` and ``[0, n_items)``, files.
    n_heldout : int, optional
        Rows of ``heldout.parquet``; default 1% of ``n_rows``, at most 1,000,000.
    seed, rank, noise, user_exponent, item_exponent
        As in :func:`fastrec.datasets.make_ratings`.

    Returns
    -------
    dict
        The manifest: the arguments, ``train`` (the folder of the partitions),
        ``files`` (their paths), ``heldout`` (its path) and ``reused``
        (whether the folder was already complete).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fastrec import _validation as V
    from fastrec.datasets.synthetic import _PowerLaw

    n_rows = V.check_int(n_rows, "n_rows", minimum=1)
    n_users = V.check_int(n_users, "n_users", minimum=1)
    n_items = V.check_int(n_items, "n_items", minimum=1)
    n_partitions = V.check_int(n_partitions, "n_partitions", minimum=1)
    if n_partitions > n_rows:
        raise ValueError(f"n_partitions={n_partitions} exceeds n_rows={n_rows}; give at most one per row.")
    n_heldout = min(max(n_rows // 100, 1), 1_000_000) if n_heldout is None else n_heldout
    n_heldout = V.check_int(n_heldout, "n_heldout", minimum=1)
    folder = Path(folder)
    spec = {
        "n_rows": n_rows,
        "n_users": n_users,
        "n_items": n_items,
        "n_partitions": n_partitions,
        "n_heldout": n_heldout,
        "seed": int(seed),
        "rank": int(rank),
        "noise": float(noise),
        "user_exponent": float(user_exponent),
        "item_exponent": float(item_exponent),
    }
    files = [str(folder / "train" / f"part-{p:05d}.parquet") for p in range(n_partitions)]
    heldout = str(folder / "heldout.parquet")
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            found = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError):
            found = {}
        if found.get("spec") == spec and all(Path(f).is_file() for f in [*files, heldout]):
            return {
                **spec,
                "train": str(folder / "train"),
                "files": files,
                "heldout": heldout,
                "reused": True,
            }
    (folder / "train").mkdir(parents=True, exist_ok=True)
    manifest.unlink(missing_ok=True)  # written last: an interrupted run is redone
    for old in (folder / "train").glob("part-*.parquet"):
        old.unlink()

    rng = np.random.default_rng(seed)
    user_law = _PowerLaw(n_users, user_exponent, rng)
    item_law = _PowerLaw(n_items, item_exponent, rng)
    scale = 0.8 / math.sqrt(rank)
    user_factors = rng.normal(0.0, scale, size=(n_users, rank)).astype(np.float32)
    item_factors = rng.normal(0.0, scale, size=(n_items, rank)).astype(np.float32)
    user_bias = rng.normal(0.0, 0.35, size=n_users).astype(np.float32)
    item_bias = rng.normal(0.0, 0.45, size=n_items).astype(np.float32)
    seeds = np.random.SeedSequence(seed).spawn(n_partitions + 1)
    schema = pa.schema([("user", pa.int32()), ("item", pa.int32()), ("rating", pa.float32())])

    def rows(count: int, part_rng: np.random.Generator) -> Any:
        users = user_law.draw(count, part_rng).astype(np.int32)
        items = item_law.draw(count, part_rng).astype(np.int32)
        values = np.empty(count, dtype=np.float32)
        step = 1 << 20  # the factor rows of a million pairs at a time
        for lo in range(0, count, step):
            u, i = users[lo : lo + step], items[lo : lo + step]
            signal = np.einsum("ij,ij->i", user_factors[u], item_factors[i])
            raw = 3.55 + user_bias[u] + item_bias[i] + signal
            raw += part_rng.normal(0.0, noise, size=u.size).astype(np.float32)
            values[lo : lo + step] = np.clip(np.round(raw), 1, 5)
        return pa.table({"user": users, "item": items, "rating": values}, schema=schema)

    bounds = np.linspace(0, n_rows, n_partitions + 1).astype(np.int64)
    for p in range(n_partitions):
        pq.write_table(rows(int(bounds[p + 1] - bounds[p]), np.random.default_rng(seeds[p])), files[p])
    pq.write_table(rows(n_heldout, np.random.default_rng(seeds[-1])), heldout)
    manifest.write_text(json.dumps({"spec": spec, "files": [Path(f).name for f in files]}, indent=1))
    return {**spec, "train": str(folder / "train"), "files": files, "heldout": heldout, "reused": False}


def read_parquet_frame(path: str | os.PathLike) -> Any:
    """A Parquet file or folder of partitions as one pandas DataFrame (pyarrow)."""
    import pyarrow.parquet as pq

    return pq.read_table(str(path)).to_pandas()


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    """Root mean squared error of ``pred`` (clipped to 1..5) against ``truth``."""
    pred = np.clip(np.asarray(pred, dtype=np.float64), 1.0, 5.0)
    return float(np.sqrt(np.mean((pred - np.asarray(truth, dtype=np.float64)) ** 2)))


# --- clusters and memory (worker side) ---------------------------------------------------------


def peak_rss_mb() -> float:
    """The largest resident set of this process so far, in MiB.

    Linux's ``VmHWM`` counts this process's own memory only; ``ru_maxrss`` (the
    fallback elsewhere) also counts the peak of the process that started it, which
    for a spawned worker may be a large parent.
    """
    with contextlib.suppress(OSError):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024.0 / MB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0 / MB


def layout(workers: int, threads: int) -> tuple[int, int]:
    """(workers, threads per worker) sharing ``threads`` cores; fewer cores than workers is an error."""
    if workers > threads:
        raise RuntimeError(
            f"{workers} workers need at least {workers} threads to share; give --threads {workers} or more"
        )
    return workers, threads // workers


def memory_limit_of(text: str, workers: int) -> int:
    """Bytes per worker: ``text`` ("8GiB", "4e9") or, for "auto", 80% of this machine's memory / workers."""
    if str(text).lower() == "auto":
        import psutil

        return int(0.8 * psutil.virtual_memory().total / workers)
    from dask.utils import parse_bytes

    return int(parse_bytes(str(text)))


@contextlib.contextmanager
def local_cluster(workers: int, threads_per_worker: int, processes: bool, memory_limit: int) -> Iterator[Any]:
    """A LocalCluster and its Client, closed on exit; the dashboard and logs kept quiet."""
    import logging

    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=threads_per_worker,
        processes=processes,
        memory_limit=memory_limit,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    with cluster, Client(cluster) as client:
        yield client


def worker_peaks(client: Any, processes: bool) -> list[float]:
    """Peak resident MiB of each worker process (one value, this process's, without processes)."""
    if not processes:
        return [round(peak_rss_mb(), 1)]
    return [round(v, 1) for v in client.run(peak_rss_mb).values()]


def _require(peer: str) -> None:
    module, command = PEER_PACKAGES[peer]
    if not suite.installed(module):
        raise RuntimeError(f"not installed: {command}")


def _fastrec_dask() -> Any:
    import fastrec.dask

    return fastrec.dask


def _layout_text(workers: int, per_worker: int) -> str:
    return (
        f"{workers} worker{'s' if workers > 1 else ''} x {per_worker} thread{'s' if per_worker > 1 else ''}"
    )


# --- mf: fastrec, fastrec.dask DSGD, Spark MLlib ALS ---------------------------------------------


def _known_pairs(test: Any, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    return np.isin(test["user"].to_numpy(), user_ids) & np.isin(test["item"].to_numpy(), item_ids)


def _mf_params(data: dict[str, Any], threads: int | None, warm_up: bool = False) -> dict[str, Any]:
    return {
        "n_factors": 4 if warm_up else int(data["factors"]),
        "n_epochs": 1 if warm_up else int(data["epochs"]),
        "random_state": 0,
        "n_threads": threads,
    }


def _tiny_frame() -> Any:
    import pandas as pd

    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "user": rng.integers(0, 50, 1000).astype(np.int32),
            "item": rng.integers(0, 40, 1000).astype(np.int32),
            "rating": rng.integers(1, 6, 1000).astype(np.float32),
        }
    )


def _mf_one_machine(data: dict[str, Any], threads: int) -> dict[str, Any]:
    import fastrec

    columns = ("user", "item", "rating")
    start = time.perf_counter()
    fastrec.MatrixFactorization(**_mf_params(data, threads, True)).fit(_tiny_frame(), columns=columns)
    started = time.perf_counter() - start
    seconds, cpu, model = suite.timed(
        lambda: fastrec.MatrixFactorization(**_mf_params(data, threads)).fit(
            read_parquet_frame(data["train"]), columns=columns
        )
    )
    test = read_parquet_frame(data["test"])
    error = rmse(model.predict(test["user"].to_numpy(), test["item"].to_numpy()), test["rating"].to_numpy())
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "quality": {
            "layout": f"1 process x {threads} thread{'s' if threads > 1 else ''}",
            "test RMSE": round(error, 5),
            "start s": round(started, 3),
            "peak MB per worker": [round(peak_rss_mb(), 1)],
        },
    }


def _dask_frame(path: str) -> Any:
    import dask.dataframe as dd

    return dd.read_parquet(path)


def _mf_dask(data: dict[str, Any], threads: int, workers: int) -> dict[str, Any]:
    import dask.dataframe as dd

    import fastrec

    n_workers, per_worker = layout(workers, threads)
    processes = bool(data["processes"])
    options = {"n_blocks": dsgd_blocks(data, n_workers * per_worker)}
    start = time.perf_counter()
    with local_cluster(
        n_workers, per_worker, processes, memory_limit_of(data["memory_limit"], n_workers)
    ) as client:
        fdask = _fastrec_dask()
        tiny = fdask.interactions(dd.from_pandas(_tiny_frame(), npartitions=2), "user", "item", "rating")
        fdask.fit(fastrec.MatrixFactorization(**_mf_params(data, None, True)), tiny, client=client, **options)
        started = time.perf_counter() - start

        def fit() -> Any:
            found = fdask.interactions(_dask_frame(data["train"]), "user", "item", "rating")
            model = fastrec.MatrixFactorization(**_mf_params(data, None))
            return fdask.fit(model, found, client=client, **options)

        seconds, cpu, model = suite.timed(fit)
        peaks = worker_peaks(client, processes)
    test = read_parquet_frame(data["test"])
    error = rmse(model.predict(test["user"].to_numpy(), test["item"].to_numpy()), test["rating"].to_numpy())
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "quality": {
            "layout": _layout_text(n_workers, per_worker),
            "test RMSE": round(error, 5),
            "start s": round(started, 3),
            "peak MB per worker": peaks,
        },
    }


@contextlib.contextmanager
def spark_session(threads: int, memory: str) -> Iterator[Any]:
    """A local-mode SparkSession on ``threads`` cores, offline and quiet; stopped on exit."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no lookup of the host's address
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master(f"local[{threads}]")
        .appName("fastrec-bench-dask")
        .config("spark.driver.memory", memory)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(max(2, 2 * threads)))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


def dsgd_blocks(data: dict[str, Any], threads: int) -> int:
    """DSGD's grid side: ``--blocks``, else the cluster's thread count (one block per thread at once)."""
    return int(data["blocks"]) if int(data.get("blocks", 0)) > 0 else threads


def _spark_rss_mb() -> list[float]:
    """Resident MiB of this process and its children (the Spark JVM), now."""
    import psutil

    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return [round(total / MB, 1)]


def _mf_spark(data: dict[str, Any], threads: int) -> dict[str, Any]:
    _require("spark")
    import warnings

    warnings.filterwarnings("ignore")  # pyspark's notes on the pandas version
    start = time.perf_counter()
    with spark_session(threads, data["spark_memory"]) as spark:
        from pyspark.ml.evaluation import RegressionEvaluator
        from pyspark.ml.recommendation import ALS
        from pyspark.sql import functions as F

        def als(rank: int, iterations: int) -> Any:
            return ALS(
                rank=rank,
                maxIter=iterations,
                regParam=float(data["spark_reg"]),
                userCol="user",
                itemCol="item",
                ratingCol="rating",
                coldStartStrategy="drop",
                seed=0,
            )

        als(4, 1).fit(spark.createDataFrame(_tiny_frame()))  # JVM warm-up
        started = time.perf_counter() - start
        seconds, cpu, model = suite.timed(
            lambda: als(int(data["factors"]), int(data["spark_iterations"])).fit(
                spark.read.parquet(data["train"])
            )
        )
        predicted = model.transform(spark.read.parquet(data["test"]))
        predicted = predicted.withColumn(
            "prediction", F.least(F.greatest("prediction", F.lit(1.0)), F.lit(5.0))
        )
        error = RegressionEvaluator(
            metricName="rmse", labelCol="rating", predictionCol="prediction"
        ).evaluate(predicted)
        memory = _spark_rss_mb()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "quality": {
            "layout": f"local[{threads}]",
            "test RMSE": round(float(error), 5),
            "start s": round(started, 3),
            "peak MB per worker": memory,
        },
    }


def prepare_mf(size: str, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
    """The ratings of ``size`` split 80/20: training Parquet partitions (rows shuffled) and a test file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fastrec.bench.mf import split

    R = make_size_ratings(size.split("-", 1)[1])
    train, test = split(R)
    coo = train.tocoo()
    order = np.random.default_rng(0).permutation(coo.nnz)
    users, items, values = coo.row[order], coo.col[order], coo.data[order]
    train_dir = folder / "train"
    train_dir.mkdir()
    n_parts = max(1, min(int(options["partitions"]), coo.nnz))
    bounds = np.linspace(0, coo.nnz, n_parts + 1).astype(np.int64)
    for p in range(n_parts):
        part = slice(bounds[p], bounds[p + 1])
        table = pa.table(
            {
                "user": users[part].astype(np.int32),
                "item": items[part].astype(np.int32),
                "rating": values[part].astype(np.float32),
            }
        )
        pq.write_table(table, train_dir / f"part-{p:05d}.parquet")
    # pairs of users and items seen in training: no engine meets a cold start
    seen_users, seen_items = np.unique(coo.row), np.unique(coo.col)
    test_users, test_items = test[:, 0].astype(np.int64), test[:, 1].astype(np.int64)
    keep = np.isin(test_users, seen_users) & np.isin(test_items, seen_items)
    pq.write_table(
        pa.table(
            {
                "user": test_users[keep].astype(np.int32),
                "item": test_items[keep].astype(np.int32),
                "rating": test[keep, 2].astype(np.float32),
            }
        ),
        folder / "test.parquet",
    )
    return {
        "train": str(train_dir),
        "test": str(folder / "test.parquet"),
        "shape": f"{shape_text(R)}; {coo.nnz:,} train in {n_parts} Parquet files, {int(keep.sum()):,} test",
    }


# --- kmeans: fastrec, fastrec.dask, dask-ml --------------------------------------------------


def prepare_kmeans(size: str, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
    """The KMeans benchmark's embeddings of ``size`` as .npy chunks, and the initial centres."""
    from fastrec.bench.kmeans import common_inertia
    from fastrec.datasets import make_user_embeddings

    n, d, k = KMEANS_SHAPES[size]
    X, _ = make_user_embeddings(n, d, n_segments=64, seed=0)
    init = X[np.random.default_rng(0).choice(n, k, replace=False)]
    rows = max(1, min(int(options["chunk_rows"]), n)) if size != "kmeans-XS" else 1_000
    chunks = []
    for c, lo in enumerate(range(0, n, rows)):
        path = folder / f"x-{c:05d}.npy"
        np.save(path, X[lo : lo + rows])
        chunks.append([str(path), int(min(rows, n - lo))])
    np.save(folder / "init.npy", init)
    return {
        "chunks": chunks,
        "n_features": d,
        "init": str(folder / "init.npy"),
        "shape": f"{SIZES[size]}; {len(chunks)} chunks of {rows:,} rows; initial inertia "
        f"{common_inertia(X, init):.6g}",
    }


def _read_chunks(data: dict[str, Any]) -> np.ndarray:
    return np.concatenate([np.load(path) for path, _ in data["chunks"]])


def _dask_chunks(data: dict[str, Any]) -> Any:
    """The chunks as one Dask array, each read by the worker that holds it."""
    import dask
    import dask.array as da

    d = int(data["n_features"])
    parts = [
        da.from_delayed(dask.delayed(np.load)(path), shape=(rows, d), dtype=np.float32)
        for path, rows in data["chunks"]
    ]
    return da.concatenate(parts, axis=0)


def _kmeans_timings(load: float, fit: Any, iterations: int) -> tuple[float, float, float, Any]:
    """(end to end s, s per iteration, set-up s, fitted) from a fit of 1 and one of ``iterations``."""
    one, _, _ = suite.timed(lambda: fit(1))
    seconds, _, fitted = suite.timed(lambda: fit(iterations))
    per_iteration = (seconds - one) / max(iterations - 1, 1)
    total = load + seconds
    return total, per_iteration, total - iterations * per_iteration, fitted


def _kmeans_quality(n_iter: int, per_iteration: float, setup: float, text: str) -> dict[str, Any]:
    return {
        "layout": text,
        "iterations": int(n_iter),
        "s/iter": round(per_iteration, 5),
        "set-up s": round(setup, 3),
    }


def _kmeans_measure(contender: str, workers: int, data: dict[str, Any], threads: int) -> dict[str, Any]:
    import fastrec
    from fastrec.bench.kmeans import common_inertia

    init = np.load(data["init"])
    iterations = int(data["iterations"])

    def fastrec_model(max_iter: int, n_threads: int | None) -> Any:
        return fastrec.KMeans(
            init.shape[0], init=init, n_init=1, max_iter=max_iter, tol=0.0, n_threads=n_threads
        )

    cpu = time.process_time()
    if contender == "fastrec":
        load, _, X = suite.timed(lambda: _read_chunks(data))
        fastrec_model(1, threads).fit(X[: min(2048, X.shape[0])])  # thread pools, page faults
        total, per_iteration, setup, model = _kmeans_timings(
            load, lambda m: fastrec_model(m, threads).fit(X), iterations
        )
        text = f"1 process x {threads} thread{'s' if threads > 1 else ''}"
        quality = _kmeans_quality(model.n_iter_, per_iteration, setup, text)
        quality["peak MB per worker"] = [round(peak_rss_mb(), 1)]
        centers, started = model.cluster_centers_, 0.0
    else:
        n_workers, per_worker = layout(workers, threads)
        processes = bool(data["processes"])
        start = time.perf_counter()
        if contender == "dask-ml":
            _require("dask-ml")
        with local_cluster(
            n_workers, per_worker, processes, memory_limit_of(data["memory_limit"], n_workers)
        ) as client:
            from distributed import wait

            def persisted() -> Any:
                X = _dask_chunks(data).persist()
                wait(X)
                return X

            loaded, _, X = suite.timed(persisted)
            if contender == "dask-ml":
                from dask_ml.cluster import KMeans as DaskMLKMeans

                def fit(m: int) -> Any:
                    return DaskMLKMeans(
                        n_clusters=init.shape[0], init=init, max_iter=m, tol=0.0, n_init=1
                    ).fit(X)
            else:
                fdask = _fastrec_dask()

                def fit(m: int) -> Any:
                    return fdask.fit(fastrec_model(m, None), X, client=client)

            fit(1)  # on every worker: imports, JIT compilation, thread pools; timed as the start
            started = time.perf_counter() - start - loaded
            total, per_iteration, setup, model = _kmeans_timings(loaded, fit, iterations)
            peaks = worker_peaks(client, processes)
        centers = np.asarray(model.cluster_centers_, dtype=np.float32)
        quality = _kmeans_quality(model.n_iter_, per_iteration, setup, _layout_text(n_workers, per_worker))
        quality["peak MB per worker"] = peaks
    cpu = time.process_time() - cpu
    inertia = common_inertia(_read_chunks(data), np.asarray(centers, dtype=np.float32))
    quality["start s"] = round(started, 3)
    quality["final inertia"] = float(f"{inertia:.7e}")
    return {"seconds": total, "cpu_seconds": cpu, "quality": quality}


# --- scale: the generated interactions, DSGD and ALS on 1, 2, ... workers ----------------------


def prepare_scale(size: str, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Generate (or reuse) the interactions of ``size`` in ``--data-dir`` (else under ``folder``)."""
    rows, users, items, parts = SCALE_SHAPES[size]
    if size == "scale-100M":
        rows = int(options["scale_rows"])
        users, items = int(options["scale_users"]), int(options["scale_items"])
        parts = max(1, math.ceil(rows / 5_000_000))
    root = Path(options["data_dir"]) if options.get("data_dir") else folder
    target = root / f"interactions-{rows}"
    start = time.perf_counter()
    found = write_interactions(target, rows, users, items, parts)
    made = time.perf_counter() - start
    print(
        f"  dask {size}: {'reused' if found['reused'] else 'generated'} {rows:,} interactions in "
        f"{parts} Parquet files under {target} ({made:.1f} s)",
        file=sys.stderr,
        flush=True,
    )
    return {
        "train": found["train"],
        "heldout": found["heldout"],
        "n_rows": rows,
        "shape": f"{rows:,} interactions, {users:,} users x {items:,} items, {parts} Parquet files "
        f"({found['n_heldout']:,} held out)",
    }


def _scale_fits_in_memory(n_rows: int) -> None:
    """Raise when one machine cannot hold the frame, the CSR and the sort of ``n_rows`` rows."""
    import psutil

    needed = 120 * n_rows  # measured: 10M rows peaked at 1.4 GB above the factors (frame, id maps, sort)
    available = psutil.virtual_memory().available
    if needed > 0.9 * available:
        raise RuntimeError(
            f"does not fit in memory on one machine: needs about {needed / 2**30:.1f} GiB, "
            f"{available / 2**30:.1f} GiB available"
        )


def _scale_params(model: str, data: dict[str, Any], threads: int | None) -> dict[str, Any]:
    common = {"n_factors": int(data["factors"]), "random_state": 0, "n_threads": threads}
    if model == "ALS":
        return {**common, "n_iterations": int(data["als_iterations"])}
    return {**common, "n_epochs": int(data["epochs"])}


def _heldout_rmse(model: Any, data: dict[str, Any]) -> float:
    """RMSE of a fitted MF on the held-out rows whose user and item it was trained on."""
    test = read_parquet_frame(data["heldout"])
    keep = _known_pairs(test, model.user_ids_, model.item_ids_)
    users, items = test["user"].to_numpy()[keep], test["item"].to_numpy()[keep]
    return rmse(model.predict(users, items), test["rating"].to_numpy()[keep])


def _scale_measure(model_name: str, workers: int, data: dict[str, Any], threads: int) -> dict[str, Any]:
    import fastrec

    cls = fastrec.ALS if model_name == "ALS" else fastrec.MatrixFactorization
    quality: dict[str, Any] = {}
    if workers == 0:
        from fastrec.datasets import Interactions

        _scale_fits_in_memory(int(data["n_rows"]))

        def fit() -> Any:
            frame = read_parquet_frame(data["train"])
            model = cls(**_scale_params(model_name, data, threads))
            if model_name == "MF":  # every row a rating, as DSGD reads them
                return model.fit(frame, columns=("user", "item", "rating"))
            # repeated pairs resolved as fastrec.dask.interactions does (the last kept)
            return model.fit(Interactions.from_frame(frame, "user", "item", "rating").matrix)

        seconds, cpu, model = suite.timed(fit)
        quality["layout"] = f"1 process x {threads} thread{'s' if threads > 1 else ''}"
        quality["peak MB per worker"] = [round(peak_rss_mb(), 1)]
        if model_name == "MF":
            quality["held-out RMSE"] = round(_heldout_rmse(model, data), 5)
        return {"seconds": seconds, "cpu_seconds": cpu, "quality": quality}
    n_workers, per_worker = layout(workers, threads)
    processes = bool(data["processes"])
    limit = memory_limit_of(data["memory_limit"], n_workers)
    if model_name == "ALS":
        options = {"block_size": int(data["block_size"])} if int(data.get("block_size", 0)) > 0 else {}
    else:
        options = {"n_blocks": dsgd_blocks(data, n_workers * per_worker)}
    start = time.perf_counter()
    with local_cluster(n_workers, per_worker, processes, limit) as client:
        started = time.perf_counter() - start
        fdask = _fastrec_dask()

        def fit() -> Any:
            found = fdask.interactions(_dask_frame(data["train"]), "user", "item", "rating")
            return fdask.fit(cls(**_scale_params(model_name, data, None)), found, client=client, **options)

        seconds, cpu, model = suite.timed(fit)
        quality["peak MB per worker"] = worker_peaks(client, processes)
    quality["layout"] = _layout_text(n_workers, per_worker)
    quality["memory limit MB"] = round(limit / MB)
    quality["client peak MB"] = round(peak_rss_mb())  # what the fit gathers (the model, its ratings)
    quality["start s"] = round(started, 3)
    if model_name == "MF":
        quality["held-out RMSE"] = round(_heldout_rmse(model, data), 5)
    return {"seconds": seconds, "cpu_seconds": cpu, "quality": quality}


# --- the suite interface ---------------------------------------------------------------------


def part_of(size: str) -> str:
    """``"mf"``, ``"kmeans"`` or ``"scale"``: the part a size belongs to."""
    return size.split("-", 1)[0]


def _int_list(text: Any, name: str) -> list[int]:
    try:
        found = [int(p) for p in str(text).split(",") if p.strip()]
    except ValueError:
        found = []
    if not found or any(v < 1 for v in found):
        raise ValueError(f"{name} takes positive whole numbers such as 1,2, got {text!r}")
    return list(dict.fromkeys(found))


def parts_of(text: Any) -> list[str]:
    """The parts named by ``--only`` (comma-separated)."""
    found = [p.strip().lower() for p in str(text).split(",") if p.strip()]
    unknown = [p for p in found if p not in PARTS]
    if not found or unknown:
        raise ValueError(f"--only takes some of {', '.join(PARTS)} (comma-separated), got {text!r}")
    return found


def add_arguments(parser: Any) -> None:
    """Options of this benchmark."""
    parser.add_argument(
        "--only",
        default=None,
        help="parts to run: some of mf,kmeans,scale (default mf,kmeans; scale too with --data-dir)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes of every part (a smoke test)")
    parser.add_argument(
        "--data-dir", default=None, help="folder of the scale part's generated Parquet data (kept and reused)"
    )
    parser.add_argument(
        "--workers", default="1,2", help="LocalCluster worker counts sharing the threads (default 1,2)"
    )
    parser.add_argument(
        "--processes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="workers in their own processes (default); --no-processes: threads of one process",
    )
    parser.add_argument(
        "--memory-limit",
        default="auto",
        help="memory limit per worker, e.g. 8GiB (default auto: 80%% of the machine's memory / workers)",
    )
    parser.add_argument(
        "--partitions", type=int, default=8, help="Parquet files of the mf training data (default 8)"
    )
    parser.add_argument("--factors", type=int, default=100, help="rank of every factor model (default 100)")
    parser.add_argument("--epochs", type=int, default=20, help="fastrec MF epochs (default 20)")
    parser.add_argument(
        "--blocks", type=int, default=0, help="DSGD n_blocks (default 0: the cluster's thread count)"
    )
    parser.add_argument(
        "--block-size", type=int, default=0, help="distributed ALS block_size (default 0: its default)"
    )
    parser.add_argument("--spark-iterations", type=int, default=10, help="Spark ALS maxIter (default 10)")
    parser.add_argument("--spark-reg", type=float, default=0.1, help="Spark ALS regParam (default 0.1)")
    parser.add_argument("--spark-memory", default="8g", help="spark.driver.memory (default 8g)")
    parser.add_argument("--kmeans-iterations", type=int, default=20, help="Lloyd iterations (default 20)")
    parser.add_argument(
        "--kmeans-rows",
        default="1M",
        choices=["1M", "10M"],
        help="rows of the KMeans part (default 1M; 10M shows the per-iteration overhead amortised)",
    )
    parser.add_argument(
        "--chunk-rows", type=int, default=125_000, help="rows per KMeans chunk (default 125000)"
    )
    parser.add_argument(
        "--als-iterations", type=int, default=10, help="ALS iterations in the scale part (default 10)"
    )
    parser.add_argument("--scale-rows", type=int, default=100_000_000, help="interactions of the scale part")
    parser.add_argument("--scale-users", type=int, default=1_000_000, help="users of the scale part")
    parser.add_argument("--scale-items", type=int, default=100_000, help="items of the scale part")


def sizes(options: dict[str, Any]) -> dict[str, str]:
    """Every size of every part (the scale part's shape follows ``--scale-*``)."""
    found = dict(SIZES)
    rows, users, items = (
        int(options.get(k) or d)
        for k, d in (("scale_rows", 100_000_000), ("scale_users", 1_000_000), ("scale_items", 100_000))
    )
    found["scale-100M"] = f"scale, {rows:,} interactions, {users:,} users x {items:,} items"
    return found


def default_sizes(options: dict[str, Any]) -> list[str]:
    """None: ``fastrec bench dask`` names its sizes itself (see :func:`planned_sizes`)."""
    return list(DEFAULT_SIZES)


def contenders(options: dict[str, Any]) -> list[suite.Contender]:
    """Per part: fastrec on one machine, fastrec.dask on each worker count, and the peer."""
    workers = _int_list(options["workers"], "--workers")
    mf = tuple(s for s in SIZES if part_of(s) == "mf")
    kmeans = tuple(s for s in SIZES if part_of(s) == "kmeans")
    scale = tuple(s for s in SIZES if part_of(s) == "scale")

    def plural(w: int) -> str:
        return f"{w} worker{'s' if w > 1 else ''}"

    found = [suite.Contender("fastrec MF (1 machine)", key="mf fastrec", sizes=mf, peer=False)]
    found += [
        suite.Contender(f"fastrec.dask DSGD ({plural(w)})", key=f"mf dask {w}", sizes=mf, peer=False)
        for w in workers
    ]
    if options["peers"]:
        found.append(suite.Contender(SPARK, key="mf spark", sizes=mf))
    found.append(
        suite.Contender("fastrec KMeans (1 machine)", key="kmeans fastrec 0", sizes=kmeans, peer=False)
    )
    for w in workers:
        found.append(
            suite.Contender(
                f"fastrec.dask KMeans ({plural(w)})", key=f"kmeans dask {w}", sizes=kmeans, peer=False
            )
        )
        if options["peers"]:
            found.append(suite.Contender(f"{DASK_ML} ({plural(w)})", key=f"kmeans dask-ml {w}", sizes=kmeans))
    for model, label in (("MF", "DSGD"), ("ALS", "ALS")):
        found.append(
            suite.Contender(f"fastrec {model} (1 machine)", key=f"scale {model} 0", sizes=scale, peer=False)
        )
        found += [
            suite.Contender(
                f"fastrec.dask {label} ({plural(w)})", key=f"scale {model} {w}", sizes=scale, peer=False
            )
            for w in workers
        ]
    return found


SETTINGS = (
    "processes",
    "memory_limit",
    "factors",
    "epochs",
    "blocks",
    "block_size",
    "spark_iterations",
    "spark_reg",
    "spark_memory",
    "als_iterations",
)


def prepare(size: str, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
    """The data of ``size`` (its part's ``prepare_*``) and the settings every measurement reads."""
    part = part_of(size)
    if part == "mf":
        data = prepare_mf(size, folder, options)
    elif part == "kmeans":
        data = prepare_kmeans(size, folder, options)
        data["iterations"] = int(options["kmeans_iterations"])
    else:
        data = prepare_scale(size, folder, options)
    return {**data, "part": part, **{key: options[key] for key in SETTINGS}}


def measure(contender: str, data: dict[str, Any], threads: int) -> dict[str, Any]:
    """One end-to-end run of ``contender`` (a key of :func:`contenders`) on ``data``."""
    part, engine, *rest = contender.split(" ")
    workers = int(rest[0]) if rest else 0
    if part == "mf":
        if engine == "fastrec":
            return _mf_one_machine(data, threads)
        if engine == "spark":
            return _mf_spark(data, threads)
        return _mf_dask(data, threads, workers)
    if part == "kmeans":
        return _kmeans_measure(engine, workers, data, threads)
    if part == "scale":
        return _scale_measure(engine, workers, data, threads)
    raise ValueError(f"unknown contender {contender!r}")


# --- report: per part, time against the peer and against fastrec on one machine -------------------


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _reference(
    records: Sequence[dict[str, Any]], record: dict[str, Any], names: Sequence[str]
) -> float | None:
    for name in names:
        for r in records:
            if r["contender"] == name and r["size"] == record["size"] and r["threads"] == record["threads"]:
                return _median(r["times"])
    return None


def _workers_in(name: str) -> str:
    return name[name.find("(") :] if "(" in name else ""


def _status(record: dict[str, Any]) -> str:
    if record["times"]:
        return f"{_median(record['times']):.4g}"
    errors = record["errors"]
    if errors and "not installed" in errors[-1]:
        return errors[-1][errors[-1].find("not installed") :]
    return "failed" + (f": {errors[-1]}" if errors else "")


def _ratio(value: float | None, reference: float | None) -> str:
    return f"{value / reference:.2f}x" if value is not None and reference else "-"


def _quality_cell(name: str, value: Any) -> Any:
    """An accuracy column's cell: RMSE to 4 decimals (the engines differ in the third)."""
    if "RMSE" in name and isinstance(value, (int, float)):
        return f"{value:.4f}"
    return value


def tables(records: Sequence[dict[str, Any]], sizes: Sequence[str], size_descriptions: dict[str, str]) -> str:
    """One table per size: end-to-end time, its ratios, the part's accuracy and memory columns."""
    parts = []
    for size in sizes:
        mine = [r for r in records if r["size"] == size]
        if not mine:
            continue
        part = part_of(size)
        extra = {
            "mf": ["test RMSE", "start s"],
            "kmeans": ["s/iter", "set-up s", "iterations", "final inertia", "start s"],
            "scale": ["held-out RMSE", "start s", "memory limit MB", "client peak MB"],
        }[part]
        peer_header = {"mf": f"time / {SPARK}", "kmeans": "time / dask-ml (same workers)", "scale": None}[
            part
        ]
        one_machine = {"mf": "fastrec MF (1 machine)", "kmeans": "fastrec KMeans (1 machine)"}.get(part, "")
        rows = []
        for r in mine:
            median = _median(r["times"])
            q = r.get("quality") or {}
            if part == "scale":
                model = "ALS" if "ALS" in r["contender"] else "MF"
                reference = _reference(mine, r, [f"fastrec {model} (1 machine)"])
                one_worker = _reference(
                    mine, r, [f"fastrec.dask {'ALS' if model == 'ALS' else 'DSGD'} (1 worker)"]
                )
                ratio_cells = [
                    _ratio(median, reference),
                    _ratio(one_worker, median) if "worker" in r["contender"] else "-",
                ]
            else:
                peer = (
                    _reference(mine, r, [SPARK])
                    if part == "mf"
                    else _reference(mine, r, [f"{DASK_ML} {_workers_in(r['contender'])}"])
                )
                ratio_cells = [_ratio(median, peer), _ratio(median, _reference(mine, r, [one_machine]))]
            peaks = q.get("peak MB per worker")
            rows.append(
                [
                    r["contender"],
                    q.get("layout", "-"),
                    _status(r),
                    *ratio_cells,
                    *[_quality_cell(k, q.get(k, "-")) for k in extra],
                    "-" if not peaks else ", ".join(f"{p:,.0f}" for p in peaks),
                    ", ".join(f"{t:.3g}" for t in r["times"]) or "-",
                ]
            )
        ratio_header = (
            ["time / 1 machine", "speed-up over 1 worker"]
            if part == "scale"
            else [peer_header, "time / fastrec 1 machine"]
        )
        header = [
            "contender",
            "layout",
            f"median {UNIT}",
            *ratio_header,
            *extra,
            "peak MB per worker",
            "all rounds",
        ]
        parts.append(f"### {size}: {size_descriptions.get(size, '')}\n\n" + format_table(header, rows))
    return "\n\n".join(parts)


def chart(records: Sequence[dict[str, Any]], path: Path, title: str = TITLE) -> Path:
    """The report's usual chart (median time by size) of every record."""
    from fastrec.bench import report

    sizes = list(dict.fromkeys(r["size"] for r in records))
    section = report.Section(f"{NAME}-all", title, UNIT, "", sizes, {}, list(records))
    return report.chart(section, Path(path))


# options that must be whole numbers of at least this much
MINIMUMS = {
    "partitions": 1,
    "factors": 1,
    "epochs": 1,
    "blocks": 0,
    "block_size": 0,
    "spark_iterations": 1,
    "kmeans_iterations": 2,  # the time per iteration is the difference of two fits
    "chunk_rows": 1,
    "als_iterations": 1,
    "scale_rows": 1,
    "scale_users": 1,
    "scale_items": 1,
}


def check_options(args: Any) -> str | None:
    """The first thing wrong with this benchmark's parsed options, as an error message, or None."""
    for name, minimum in MINIMUMS.items():
        if getattr(args, name) < minimum:
            return f"--{name.replace('_', '-')} must be >= {minimum}, got {getattr(args, name)}"
    if args.spark_reg < 0:
        return f"--spark-reg must be >= 0, got {args.spark_reg}"
    try:
        _int_list(args.workers, "--workers")
        if args.only:
            parts_of(args.only)
        if str(args.memory_limit).lower() != "auto":
            from dask.utils import parse_bytes

            parse_bytes(str(args.memory_limit))
    except ValueError as exc:
        return str(exc) if "--" in str(exc) else f"--memory-limit: {exc}"
    return None


def planned_sizes(
    only: Any, mf_sizes: Sequence[str], quick: bool, data_dir: Any, kmeans_rows: str = "1M"
) -> list[str]:
    """The suite sizes of ``--only``, ``--size`` (MF's XS, M, L), ``--kmeans-rows`` and ``--quick``."""
    parts = parts_of(only) if only else ["mf", "kmeans", *(["scale"] if data_dir or quick else [])]
    if quick:
        return [s for s in QUICK_SIZES if part_of(s) in parts]
    out: list[str] = []
    for part in parts:
        if part == "mf":
            for size in mf_sizes or ["M", "L"]:
                name = size if size.startswith("mf-") else f"mf-{size}"
                if name not in SIZES:
                    raise ValueError(f"--size takes the mf part's sizes XS, M and L, got {size!r}")
                out.append(name)
        elif part == "kmeans":
            out.append(f"kmeans-{kmeans_rows}")
        else:
            out.append("scale-100M")
    return out


def main(argv: Sequence[str] | None = None, prog: str = "python -m fastrec.bench dask") -> int:
    """Run this benchmark: ``--only``, ``--size`` (M, L) and ``--quick`` become the suite's sizes."""
    from fastrec.bench._common import Parser

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        return suite.main([NAME], argv, prog)
    parser = Parser(prog=prog)
    suite.add_common_arguments(parser)
    add_arguments(parser)
    args = parser.parse_args(argv)  # a usage mistake ends here, with exit code 2
    try:
        planned = planned_sizes(
            args.only, suite._split_list(args.sizes), args.quick, args.data_dir, args.kmeans_rows
        )
    except ValueError as exc:
        parser.error(str(exc))
    problem = check_options(args)
    if problem:
        parser.error(problem)
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--size", "--sizes", dest="sizes", nargs="+")
    _, rest = own.parse_known_args(argv)
    return suite.main([NAME], [*rest, "--size", ",".join(planned)], prog)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
