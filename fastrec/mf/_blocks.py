"""Pieces of MatrixFactorization's training that run on one block of a distributed fit.

:func:`fastrec.dask.fit` trains a :class:`~fastrec.mf.MatrixFactorization` by DSGD:
each task holds one users x items block of ratings and one user and one item
factor block.  This module gives such a task what the single-machine fit does
for the whole matrix: the initial factor rows of a range of ids (the rows the
single-machine initialisation draws for them), and one epoch of the compiled
SGD kernel on one block, with the block id that seeds its sample order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastrec import _runtime
from fastrec.mf.grid import aligned_zeros, padded_width, standard_normal
from fastrec.mf.model import INIT_CHUNK_ROWS, _kernels, sgd_settings


def init_seeds(rng: np.random.Generator, n: int) -> np.ndarray:
    """int64 seeds of the INIT_CHUNK_ROWS-row chunks of ``n`` factor rows, drawn as
    ``MatrixFactorization._init_factors`` draws them (and advancing ``rng`` as it does)."""
    return rng.integers(np.iinfo(np.int64).max, size=len(range(0, n, INIT_CHUNK_ROWS)))


def init_rows(
    seeds: np.ndarray,
    n: int,
    start: int,
    stop: int,
    n_factors: int,
    dtype: Any,
    init_std: float,
    non_negative: bool,
) -> np.ndarray:
    """Initial factors of rows ``start:stop``, equal to those rows of the single-machine initialisation.

    Parameters
    ----------
    seeds : ndarray of int64
        The chunk seeds of the whole matrix (:func:`init_seeds`).
    n : int
        Rows of the whole matrix: the last chunk's length, which its draws depend on.
    start, stop : int
        The row range, ``0 <= start <= stop <= n``.
    n_factors : int
    dtype : np.float32 or np.float64
    init_std : float
    non_negative : bool

    Returns
    -------
    ndarray of ``dtype``, shape (stop - start, padded n_factors)
        64-byte aligned rows, padding zeros.
    """
    dtype = np.dtype(dtype)
    k = n_factors
    out = aligned_zeros(stop - start, padded_width(k, dtype), dtype)
    scale = dtype.type(init_std)
    for chunk in range(start // INIT_CHUNK_ROWS, -(-stop // INIT_CHUNK_ROWS)):
        # a chunk's stream fixes all its rows at once: draw the whole chunk, keep the rows wanted
        chunk_start = chunk * INIT_CHUNK_ROWS
        chunk_stop = min(n, chunk_start + INIT_CHUNK_ROWS)
        draws = standard_normal(np.random.default_rng(seeds[chunk]), (chunk_stop - chunk_start) * k, dtype)
        draws = draws.reshape(chunk_stop - chunk_start, k)
        lo, hi = max(start, chunk_start), min(stop, chunk_stop)
        rows = draws[lo - chunk_start : hi - chunk_start]
        rows *= scale
        out[lo - start : hi - start, :k] = np.abs(rows) if non_negative else rows
    return out


def sgd_block_epoch(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    P: np.ndarray,
    Q: np.ndarray,
    bu: np.ndarray,
    bi: np.ndarray,
    *,
    block: int,
    side: int,
    params: dict[str, Any],
    mu: float,
    shuffle_seed: int,
    shuffle_within_runs: bool,
    n_threads: int,
) -> float:
    """One epoch of MatrixFactorization's SGD kernel on one block; returns the squared errors met.

    The kernel sees the block as block ``block`` of a ``side`` x ``side`` grid whose
    other blocks are empty, so its sample order is the one the single-machine
    kernel draws for that block id from ``shuffle_seed``.

    Parameters
    ----------
    users, items : ndarray of int32, shape (nnz,)
        Rows of ``P`` and ``Q``; ``users`` sorted (each user's ratings one run).
        ``items`` is INOUT: shuffled within runs when ``shuffle_within_runs``.
    ratings : ndarray of the model dtype, shape (nnz,)
        INOUT as ``items``.
    P, Q : ndarray, shape (n_block_users, stride), (n_block_items, stride)
        INOUT factors: 64-byte aligned rows padded to whole vectors.
    bu, bi : ndarray, shape (n_block_users,), (n_block_items,)
        INOUT biases.
    block, side : int
        The block id ``row * side + column`` and the grid side.
    params : dict
        ``MatrixFactorization._checked_params()``.
    mu : float
        The global mean (0 for an unbiased model).
    shuffle_seed : int
        The epoch's shuffle seed.
    shuffle_within_runs : bool
        Shuffle every user's ratings in place first (the first epoch of a fit).
    n_threads : int

    Returns
    -------
    float
        Sum of the squared errors met during the epoch.
    """
    n_blocks = side * side
    block_ptr = np.zeros(n_blocks + 1, dtype=np.int64)
    block_ptr[block + 1 :] = users.size
    sse = np.zeros(n_blocks, dtype=np.float64)
    backend = params["backend"]
    with _runtime.kernel_threads(backend, n_threads):
        _kernels(backend).sgd_mf_epoch(
            users=users,
            items=items,
            ratings=ratings,
            block_ptr=block_ptr,
            schedule=np.array([[block]], dtype=np.int64),
            P=P,
            Q=Q,
            bu=bu,
            bi=bi,
            **sgd_settings(params, mu),
            hogwild=False,
            shuffle_seed=shuffle_seed,
            shuffle_within_runs=shuffle_within_runs,
            out_block_sse=sse,
            n_threads=n_threads,
        )
    return float(sse[block])
