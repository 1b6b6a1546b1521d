"""Reference similarity top-k: plain numpy/scipy that defines the correct answer.

Same name and argument order as the C++ and Numba kernels.  Products are formed
with scipy's sparse matmul in float64, a block of rows at a time so memory stays
bounded, then scored by the measure (cosine, dot product or Jaccard), rounded to
the output dtype, clamped to [-1, 1] (cosine and Jaccard), stripped of zero
scores and ranked by (descending score, ascending column).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

_BLOCK_ROWS = 256


def cosine_topk(
    x_indptr,
    x_indices,
    x_data,  # IN  CSR of X (n x d)
    yt_indptr,
    yt_indices,
    yt_data,  # IN  CSR of Y transposed (d x m)
    n_candidates,  # IN  m
    row_begin,
    row_end,  # IN  block of X's rows to compute
    k,
    shrink,  # IN
    measure,  # IN  0 cosine, 1 dot product, 2 Jaccard (see similarity.hpp)
    x_exp,
    y_exp,  # IN  int32 (n), (m): rows were scaled by 2^-exp (for the shrink term), or both empty
    same_matrix,
    exclude_self,  # IN
    out_indices,
    out_scores,
    out_counts,  # OUT (rows x k), (rows x k), (rows)
    n_threads,  # IN  unused: the reference is single-threaded
):
    d = yt_indptr.shape[0] - 1
    x = sp.csr_matrix((x_data, x_indices, x_indptr), shape=(x_indptr.shape[0] - 1, d))
    yt = sp.csr_matrix((yt_data, yt_indices, yt_indptr), shape=(d, n_candidates))
    x64 = x.astype(np.float64)
    yt64 = yt.astype(np.float64)
    y_sq = np.asarray(yt64.multiply(yt64).sum(axis=0)).ravel()
    x_sq = np.asarray(x64.multiply(x64).sum(axis=1)).ravel()
    y_norm = np.sqrt(y_sq)
    out_dtype = out_scores.dtype
    scaled = x_exp.shape[0] > 0

    for block_start in range(row_begin, row_end, _BLOCK_ROWS):
        block_stop = min(block_start + _BLOCK_ROWS, row_end)
        dots = (x64[block_start:block_stop] @ yt64).tocsr()
        for offset in range(block_stop - block_start):
            row = block_start + offset
            local = row - row_begin
            start, stop = dots.indptr[offset], dots.indptr[offset + 1]
            cols = dots.indices[start:stop]
            dot = dots.data[start:stop]
            keep = dot != 0
            if same_matrix and exclude_self:
                keep &= cols != row
            cols, dot = cols[keep], dot[keep]
            if measure == 1:
                scores = dot.astype(out_dtype)
            elif measure == 2:
                x_size = y_sq[row] if same_matrix else x_sq[row]
                scores = np.clip((dot / (x_size + y_sq[cols] - dot + shrink)).astype(out_dtype), -1, 1)
            else:
                x_norm = y_norm[row] if same_matrix else np.sqrt(x_sq[row])
                scores = _cosine(dot, row, cols, x_norm, y_norm, shrink, scaled, x_exp, y_exp, out_dtype)
            nonzero = scores != 0  # scores too small for the dtype are not kept
            cols, scores = cols[nonzero], scores[nonzero]
            order = np.lexsort((cols, -scores))[:k]
            count = order.size
            out_indices[local, :count] = cols[order]
            out_scores[local, :count] = scores[order]
            out_counts[local] = count


def _cosine(dot, row, cols, x_norm, y_norm, shrink, scaled, x_exp, y_exp, out_dtype):
    """Cosine scores of row ``row`` (norm ``x_norm``) against ``cols``, in the output dtype, clamped."""
    if scaled:  # the shrink term in the rows' rescaled units (inf: the score is 0)
        with np.errstate(over="ignore"):
            term = np.ldexp(shrink, -(np.int64(x_exp[row]) + y_exp[cols].astype(np.int64)))
    else:
        term = shrink
    scores = (dot / (x_norm * y_norm[cols] + term)).astype(out_dtype)
    return np.clip(scores, -1, 1)
