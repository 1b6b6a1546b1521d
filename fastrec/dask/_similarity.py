"""Cosine top-k neighbours over row blocks, against the whole candidate side or blocks of it."""

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


def _ranked(rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, n_rows: int, n_cols: int, k: int):
    """CSR of the first ``k`` entries of each row; entries come grouped by row, best first."""
    counts = np.bincount(rows, minlength=n_rows)
    starts = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    rank = np.arange(rows.size, dtype=np.int64) - starts[rows]
    keep = rank < k
    rows, cols, scores = rows[keep], cols[keep], scores[keep]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    out = sp.csr_matrix((scores, cols.astype(np.int64), indptr), shape=(n_rows, n_cols))
    out.has_sorted_indices = False  # rank order, not column order
    return out


def _entries(block: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = np.repeat(np.arange(block.shape[0], dtype=np.int64), np.diff(block.indptr))
    return rows, block.indices.astype(np.int64), block.data


_SELF_CHUNK = 256  # rows of X scored per kernel call against a candidate block when Y is X


def _candidate_block(
    xb: sp.csr_matrix,
    yb: sp.csr_matrix,
    k: int,
    first_row: int,
    first_col: int,
    drop_self: bool,
    self_norms: bool,
    n_cols: int,
    options: dict[str, Any],
    n_threads: Any,
) -> sp.csr_matrix:
    """Top-k of rows ``xb`` (from ``first_row``) among candidates ``yb`` (from ``first_col``).

    With ``self_norms`` (``Y`` is ``X``), chunks of ``xb`` are scored in one matrix with
    ``yb``, so that every norm is computed as the kernel computes it when ``Y`` is ``X``
    (row by row; the norms of a separate candidate matrix can differ in the last bit).
    """
    from fastrec.similarity import cosine_topk

    threads = task_threads(n_threads)
    # one more neighbour than kept, so that k remain once the row itself is dropped
    wanted = k + 1 if drop_self else k
    if not self_norms:
        rows, cols, scores = _entries(
            cosine_topk(xb, yb, wanted, exclude_self=False, n_threads=threads, **options)
        )
    else:
        pieces = []
        for start in range(0, xb.shape[0], _SELF_CHUNK):
            chunk = xb[start : start + _SELF_CHUNK]
            size = chunk.shape[0]
            stacked = sp.vstack([chunk, yb], format="csr")
            # the chunk's own rows are candidates too: ask for as many more, then drop them
            got = cosine_topk(
                stacked, None, wanted + size, exclude_self=False, rows=(0, size), n_threads=threads, **options
            )
            r, c, v = _entries(got)
            keep = c >= size
            pieces.append((r[keep] + start, c[keep] - size, v[keep]))
        rows = np.concatenate([p[0] for p in pieces] + [np.zeros(0, np.int64)])
        cols = np.concatenate([p[1] for p in pieces] + [np.zeros(0, np.int64)])
        scores = np.concatenate([p[2] for p in pieces] + [np.zeros(0, yb.dtype)])
    cols = cols + first_col
    if drop_self:
        other = cols != rows + first_row
        rows, cols, scores = rows[other], cols[other], scores[other]
    return _ranked(rows, cols, scores, xb.shape[0], n_cols, k)


def _merge(a: sp.csr_matrix, b: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The ``k`` best of two ranked lists per row: larger score first, equal scores the smaller column."""
    ra, ca, sa = _entries(a)
    rb, cb, sb = _entries(b)
    rows, cols, scores = np.concatenate([ra, rb]), np.concatenate([ca, cb]), np.concatenate([sa, sb])
    order = np.lexsort((cols, -scores, rows))
    return _ranked(rows[order], cols[order], scores[order], a.shape[0], a.shape[1], k)


def _merge_frame(a: sp.csr_matrix, b: sp.csr_matrix, k: int, first_row: int) -> Any:
    return _as_frame(_merge(a, b, k), first_row)


def _block_as_frame(a: sp.csr_matrix, first_row: int) -> Any:
    return _as_frame(a, first_row)


def _send(blocks: list[Any], client: Any) -> list[Any]:
    """Each block to the cluster once (a Future each), or a Delayed each without a client."""
    import dask

    if client is not None:
        return list(client.scatter(blocks, hash=False))
    return [dask.delayed(b, pure=True) for b in blocks]


def _bounds(n: int, size: int) -> np.ndarray:
    return np.unique(np.append(np.arange(0, n, size), n))


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
    block_cols: int | None = None,
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
    block_cols : int, optional
        Candidate rows (of ``Y``, or of ``X`` when ``Y`` is None) per task.
        ``None`` sends the whole candidate side to every worker.  Given, the
        candidates are cut into blocks on the client and each block goes only
        to its tasks: task ``(i, j)`` holds row block ``i`` of ``X``, candidate
        block ``j`` and the ``k`` (``k + 1`` beside the row itself) best per
        row, so its memory is that of ``block_rows`` rows of ``X``, ``block_cols``
        candidate rows and ``block_rows * k`` neighbours (plus the kernel's
        ``threads * block_cols`` accumulators; with ``Y=None`` in float64,
        chunks of 256 rows are scored at a time against the chunk stacked on
        the candidate block, keeping ``k + 257`` per row, so that the norms are
        those of the single-machine ``Y=X`` computation); the lists of the candidate
        blocks of a row block are then merged in a tree, two at a time, keeping
        the ``k`` best (larger score, then smaller column).  The result is still
        bit-identical, with one exception refused with a ValueError: ``shrink >
        0`` on data that the kernel rescales by powers of two (magnitudes
        outside about ``[2**-32, 2**32]`` in float32, ``[2**-256, 2**256]`` in
        float64, or ``shrink`` above ``2**64`` / ``2**512``), whose shrink term needs the exponents
        of rows in other blocks.
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
    if block_cols is not None:
        block_cols = V.check_int(block_cols, "block_cols", minimum=1)
    as_frame = V.check_bool(as_frame, "as_frame")
    if n_threads is not None:
        V.check_int(n_threads, "n_threads", minimum=1)
    options: dict[str, Any] = {"shrink": shrink, "exclude_self": exclude_self, "backend": backend}
    # an empty block on the client checks every argument and gives the result's shape and dtype
    probe = single(X, Y, k, rows=(0, 0), n_threads=1, **options)
    n_rows, n_cols = np.shape(X)[0], probe.shape[1]
    bounds = np.unique(np.append(np.arange(0, n_rows, block_rows), n_rows))
    client = current_client(client)
    if block_cols is not None:
        return _over_candidate_blocks(
            X, Y, k, probe, bounds, block_cols, as_frame, options, n_threads, client
        )
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


def _over_candidate_blocks(
    X: Any,
    Y: Any,
    k: int,
    probe: sp.csr_matrix,
    bounds: np.ndarray,
    block_cols: int,
    as_frame: bool,
    options: dict[str, Any],
    n_threads: Any,
    client: Any,
) -> Any:
    """:func:`cosine_topk` with the candidates cut into blocks of ``block_cols`` rows."""
    import dask

    from fastrec.similarity.cosine import _needs_rescaling, _row_exponents

    dtype = probe.dtype
    n_cols = probe.shape[1]
    shrink = float(options["shrink"])
    # the rows as the kernel reads them (float dtype, sorted unique indices, no zeros)
    x = V.canonical_csr(V.as_sparse_2d(X, "X"), "X", dtype)
    y = None if Y is None else V.canonical_csr(V.as_sparse_2d(Y, "Y"), "Y", dtype)
    # rescaling is decided on the whole data: a block alone might not need it
    if _needs_rescaling(x.data, None if y is None else y.data, shrink):
        if shrink > 0:
            raise ValueError(
                "block_cols cannot reproduce shrink > 0 on data that cosine_topk rescales by powers "
                "of two (magnitudes beyond about 2**+-32 in float32, 2**+-256 in float64, or a huge "
                "shrink): pass block_cols=None, shrink=0, or data scaled into that range."
            )
        # each row scaled as the kernel scales it; the blocks then need no rescaling of their own
        x = _scaled_rows(x, _row_exponents(x))
        y = None if y is None else _scaled_rows(y, _row_exponents(y))
    candidates = x if y is None else y
    cols = _bounds(n_cols, block_cols)
    if cols.size == 1:  # no candidates: one empty block still gives each row block its (empty) result
        cols = np.array([0, 0])
    row_blocks = _send([x[int(bounds[b]) : int(bounds[b + 1])] for b in range(bounds.size - 1)], client)
    cand_blocks = _send([candidates[int(cols[c]) : int(cols[c + 1])] for c in range(cols.size - 1)], client)
    block_options = {"shrink": shrink, "backend": options["backend"]}
    exclude_self = bool(options["exclude_self"]) and Y is None
    # float64 squares round, so norms must come from the kernel's own rows-of-X loop
    self_norms = Y is None and dtype == np.float64
    parts = []
    for b in range(bounds.size - 1):
        start, stop = int(bounds[b]), int(bounds[b + 1])
        level = []
        for c in range(cols.size - 1):
            first, last = int(cols[c]), int(cols[c + 1])
            drop_self = exclude_self and first < stop and start < last
            level.append(
                dask.delayed(_candidate_block, pure=True)(
                    row_blocks[b],
                    cand_blocks[c],
                    k,
                    start,
                    first,
                    drop_self,
                    self_norms,
                    n_cols,
                    block_options,
                    n_threads,
                )
            )
        while len(level) > 1:
            last_level = len(level) == 2 and as_frame
            merge = dask.delayed(_merge_frame if last_level else _merge, pure=True)
            pairs = [
                merge(level[i], level[i + 1], k, start) if last_level else merge(level[i], level[i + 1], k)
                for i in range(0, len(level) - 1, 2)
            ]
            level = pairs + level[len(pairs) * 2 :]
        if as_frame and cols.size == 2:
            level = [dask.delayed(_block_as_frame, pure=True)(level[0], start)]
        parts.append(level[0])
    if as_frame:
        import dask.dataframe as dd

        meta = _as_frame(probe, 0)
        if not parts:
            return dd.from_pandas(meta, npartitions=1)
        return dd.from_delayed(parts, meta=meta, verify_meta=False)
    blocks = list(client.gather(client.compute(parts))) if client is not None else list(dask.compute(*parts))
    return _stack(blocks, n_cols, dtype)


def _scaled_rows(csr: sp.csr_matrix, exponents: np.ndarray) -> sp.csr_matrix:
    """A copy of ``csr`` with row ``i`` times ``2**-exponents[i]`` (exact)."""
    data = np.ldexp(csr.data, -np.repeat(exponents, np.diff(csr.indptr)))
    return sp.csr_matrix((data, csr.indices.copy(), csr.indptr.copy()), shape=csr.shape)
