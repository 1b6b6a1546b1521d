"""Cosine top-k neighbours over row blocks, one task per block on the same matrix sent once."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from fastrec import _validation as V
from fastrec.dask._workers import broadcast, current_client, task_threads


def _block(X: Any, Y: Any, k: int, rows: tuple[int, int], options: dict[str, Any], n_threads: Any):
    from fastrec.similarity import cosine_topk

    return cosine_topk(X, Y, k, rows=rows, n_threads=task_threads(n_threads), **options)


def _block_frame(X: Any, Y: Any, k: int, rows: tuple[int, int], options: dict[str, Any], n_threads: Any):
    return _as_frame(_block(X, Y, k, rows, options, n_threads), rows[0])


def _as_frame(block: sp.csr_matrix, first_row: int) -> Any:
    """(row, rank, col, score) rows of a top-k block, rank by the stored (ranked) order."""
    import pandas as pd

    counts = np.diff(block.indptr)
    rows = np.repeat(np.arange(first_row, first_row + block.shape[0], dtype=np.int64), counts)
    ranks = np.arange(block.nnz, dtype=np.int32) - np.repeat(block.indptr[:-1], counts).astype(np.int32)
    return pd.DataFrame(
        {"row": rows, "rank": ranks, "col": block.indices.astype(np.int64), "score": block.data}
    )


def _stack(blocks: list[sp.csr_matrix], n_cols: int, dtype: np.dtype) -> sp.csr_matrix:
    """Row blocks joined without touching the order of the stored entries (their ranking)."""
    if not blocks:
        return sp.csr_matrix((0, n_cols), dtype=dtype)
    nnz = sum(b.nnz for b in blocks)
    n_rows = sum(b.shape[0] for b in blocks)
    index_dtype = V.index_dtype_for(n_rows, n_cols, nnz)
    indptr = np.zeros(n_rows + 1, dtype=index_dtype)
    counts = np.concatenate([np.diff(b.indptr) for b in blocks])
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate([b.indices for b in blocks]).astype(index_dtype, copy=False)
    data = np.concatenate([b.data for b in blocks]).astype(dtype, copy=False)
    out = sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))
    out.has_sorted_indices = False  # rank order, not column order
    return out


def cosine_topk(
    X: Any,
    Y: Any = None,
    k: int = 50,
    *,
    shrink: float = 0.0,
    exclude_self: bool = True,
    block_rows: int = 10_000,
    as_frame: bool = False,
    n_threads: int | None = None,
    backend: str = "auto",
    client: Any = None,
) -> Any:
    """:func:`fastrec.cosine_topk` computed in blocks of rows on Dask workers.

    ``X`` (and ``Y``) go to every worker once; each block of ``block_rows`` rows
    is one task running ``fastrec.cosine_topk(X, Y, k, rows=(start, stop))``
    with the task's share of its worker's threads.  Since that kernel's result
    depends neither on the block split nor on the thread count, the result is
    bit-identical to ``fastrec.cosine_topk(X, Y, k)`` on one machine.

    Parameters
    ----------
    X : scipy sparse matrix or array-like, shape (n, d)
        Rows compared; for item-item neighbours, the items x users matrix
        (``R.T`` of a users x items ``R``).
    Y : scipy sparse matrix or array-like, shape (m, d), optional
    k, shrink, exclude_self, backend
        As in :func:`fastrec.cosine_topk`.
    block_rows : int, default 10000
        Rows of ``X`` per task.
    as_frame : bool, default False
        Return a Dask DataFrame instead of gathering the neighbours on the client.
    n_threads : int, optional
        Threads per task; ``None`` takes the task's share of its worker's threads.
    client : distributed.Client, optional
        ``None`` uses the default client if there is one, else Dask's current scheduler.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n, m)
        With ``as_frame=False``: the blocks joined, equal array for array
        (``indptr``, ``indices`` in rank order, ``data``) to the single-machine result.
    dask.dataframe.DataFrame
        With ``as_frame=True``: columns ``row`` (int64), ``rank`` (int32, 0 =
        most similar), ``col`` (int64) and ``score``, one partition per block;
        write it with ``.to_parquet(path)``.
    """
    import dask

    from fastrec.similarity import cosine_topk as single

    k = V.check_int(k, "k", minimum=1)
    block_rows = V.check_int(block_rows, "block_rows", minimum=1)
    as_frame = V.check_bool(as_frame, "as_frame")
    if n_threads is not None:
        V.check_int(n_threads, "n_threads", minimum=1)
    options: dict[str, Any] = {"shrink": shrink, "exclude_self": exclude_self, "backend": backend}
    # an empty block on the client checks every argument and gives the result's shape and dtype
    probe = single(X, Y, k, rows=(0, 0), n_threads=1, **options)
    n_rows, n_cols = np.shape(X)[0], probe.shape[1]
    bounds = np.unique(np.append(np.arange(0, n_rows, block_rows), n_rows))
    client = current_client(client)
    shared_x = broadcast(X, client)
    shared_y = None if Y is None else broadcast(Y, client)
    task = _block_frame if as_frame else _block
    parts = [
        dask.delayed(task, pure=True)(
            shared_x, shared_y, k, (int(bounds[b]), int(bounds[b + 1])), options, n_threads
        )
        for b in range(bounds.size - 1)
    ]
    if as_frame:
        import dask.dataframe as dd

        meta = _as_frame(probe, 0)
        if not parts:
            return dd.from_pandas(meta, npartitions=1)
        return dd.from_delayed(parts, meta=meta, verify_meta=False)
    blocks = list(client.gather(client.compute(parts))) if client is not None else list(dask.compute(*parts))
    return _stack(blocks, n_cols, probe.dtype)
