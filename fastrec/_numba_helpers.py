"""Small Numba building blocks shared by several kernels: the bounded top-k heap, splitmix64."""

from __future__ import annotations

import numba as nb
import numpy as np

from fastrec._runtime import NUMBA_KERNEL_OPTIONS

_INLINE = dict(NUMBA_KERNEL_OPTIONS, inline="always")

# splitmix64, the generator of the SGD kernels (fastrec._draws is its numpy reference)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_S27, _S30, _S31 = np.uint64(27), np.uint64(30), np.uint64(31)


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def mix(z):
    """splitmix64's finaliser of a uint64 (integer arithmetic only: exact under any flags)."""
    z = (z ^ (z >> _S30)) * _C1
    z = (z ^ (z >> _S27)) * _C2
    return z ^ (z >> _S31)


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def cast_like(value, like):
    """``value`` as a scalar of ``like``'s dtype."""
    return np.full(1, value, dtype=like.dtype)[0]


@nb.njit(**_INLINE)
def ranks_before(score_a, index_a, score_b, index_b):
    """True when (score_a, index_a) ranks before (score_b, index_b)."""
    return score_a > score_b or (score_a == score_b and index_a < index_b)


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def heap_push(scores, indices, size, score, index):
    """Offer a candidate to a bounded min-heap whose root is the worst kept entry.

    ``scores`` / ``indices`` (INOUT) have the heap's capacity as length; ``size``
    is the current fill.  Returns the new size.
    """
    capacity = scores.shape[0]
    if size < capacity:
        pos = size
        while pos > 0:
            parent = (pos - 1) // 2
            if not ranks_before(scores[parent], indices[parent], score, index):
                break
            scores[pos] = scores[parent]
            indices[pos] = indices[parent]
            pos = parent
        scores[pos] = score
        indices[pos] = index
        return size + 1
    if capacity == 0 or not ranks_before(score, index, scores[0], indices[0]):
        return size
    _sift_down(scores, indices, size, score, index)
    return size


@nb.njit(**_INLINE)
def _sift_down(scores, indices, size, score, index):
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and ranks_before(
            scores[child], indices[child], scores[child + 1], indices[child + 1]
        ):
            child += 1
        if not ranks_before(score, index, scores[child], indices[child]):
            break
        scores[pos] = scores[child]
        indices[pos] = indices[child]
        pos = child
    scores[pos] = score
    indices[pos] = index


@nb.njit(**NUMBA_KERNEL_OPTIONS)
def heap_drain_sorted(scores, indices, size, out_scores, out_indices):
    """Write the heap's entries best first into ``out_*`` (OUT); returns the count."""
    n = size
    for slot in range(n - 1, -1, -1):
        out_scores[slot] = scores[0]
        out_indices[slot] = indices[0]
        size -= 1
        if size > 0:
            _sift_down(scores, indices, size, scores[size], indices[size])
    return n


@nb.njit(**_INLINE)
def heap_threshold(scores, size):
    """Score a candidate must reach: -inf until the heap is full."""
    if size < scores.shape[0] or size == 0:
        return -np.inf
    return scores[0]


# --- per-row spin locks for kernels whose threads update each other's heaps ---
# Numba has no atomics: these two LLVM intrinsics are what makes the locks correct.

from numba.core import cgutils, types  # noqa: E402
from numba.extending import intrinsic  # noqa: E402


def _is_int32_array(array) -> bool:
    return isinstance(array, types.Array) and array.dtype == types.int32


def _int32_slot(context, builder, signature, args):
    """Pointer to array[index] and ``value`` as int32, for the two lock intrinsics."""
    array_type, index_type, value_type = signature.args
    ary = context.make_array(array_type)(context, builder, args[0])
    index = context.cast(builder, args[1], index_type, types.intp)
    ptr = cgutils.get_item_pointer(context, builder, array_type, ary, [index])
    return ptr, context.cast(builder, args[2], value_type, types.int32)


@intrinsic
def _exchange_acquire(typingctx, array, index, value):
    """Atomically store ``value`` at ``array[index]`` (int32) and return the old value."""
    if not _is_int32_array(array):
        return None

    def codegen(context, builder, signature, args):
        ptr, new = _int32_slot(context, builder, signature, args)
        return builder.atomic_rmw("xchg", ptr, new, "acquire")

    return types.int32(array, index, value), codegen


@intrinsic
def _store_release(typingctx, array, index, value):
    """Atomically store ``value`` at ``array[index]`` (int32) with release ordering."""
    if not _is_int32_array(array):
        return None

    def codegen(context, builder, signature, args):
        ptr, new = _int32_slot(context, builder, signature, args)
        builder.store_atomic(new, ptr, "release", 4)
        return context.get_dummy_value()

    return types.void(array, index, value), codegen


@nb.njit(**_INLINE)
def spin_lock(locks, row):
    """Acquire the lock of ``row`` in ``locks`` (int32 array, 0 = free)."""
    while _exchange_acquire(locks, row, 1) != 0:
        pass


@nb.njit(**_INLINE)
def spin_unlock(locks, row):
    _store_release(locks, row, 0)


# --- explicit 16-lane vector update ---
# Measured on cosine_topk L (numba, 2 threads): a plain Numba loop here takes 1.9x as long.

from llvmlite import ir  # noqa: E402

LANE_WIDTH = 16


@intrinsic
def row_axpy16(typingctx, acc, acc_row, src, src_row, y):
    """acc[acc_row, 0:16] += src[src_row, 0:16] * y as one LLVM <16 x T> operation.

    ``acc`` and ``src`` are C-contiguous 2-D arrays of the same float dtype with at
    least 16 columns; rows must be in range (no bounds check).  Numba leaves
    LLVM's SLP vectoriser off and its loop vectoriser declines this pattern, so
    the vector operation is written out; LLVM lowers it to the target's widest
    registers.
    """
    if not (
        isinstance(acc, types.Array)
        and isinstance(src, types.Array)
        and acc.dtype == src.dtype
        and acc.dtype in (types.float32, types.float64)
        and acc.ndim == 2
        and src.ndim == 2
    ):
        return None
    sig = types.void(acc, acc_row, src, src_row, y)

    def codegen(context, builder, signature, args):
        acc_type, acc_row_type, src_type, src_row_type, y_type = signature.args
        zero = context.get_constant(types.intp, 0)

        def row_pointer(array_type, array_value, row_value, row_type):
            ary = context.make_array(array_type)(context, builder, array_value)
            row = context.cast(builder, row_value, row_type, types.intp)
            ptr = cgutils.get_item_pointer(context, builder, array_type, ary, [row, zero])
            element = context.get_value_type(array_type.dtype)
            return builder.bitcast(ptr, ir.VectorType(element, LANE_WIDTH).as_pointer())

        acc_ptr = row_pointer(acc_type, args[0], args[1], acc_row_type)
        src_ptr = row_pointer(src_type, args[2], args[3], src_row_type)
        element = context.get_value_type(acc_type.dtype)
        vector = ir.VectorType(element, LANE_WIDTH)
        scalar = context.cast(builder, args[4], y_type, acc_type.dtype)
        lane0 = builder.insert_element(ir.Constant(vector, None), scalar, ir.Constant(ir.IntType(32), 0))
        mask = ir.Constant(ir.VectorType(ir.IntType(32), LANE_WIDTH), [0] * LANE_WIDTH)
        y_vector = builder.shuffle_vector(lane0, ir.Constant(vector, None), mask)
        alignment = acc_type.dtype.bitwidth // 8
        total = builder.fadd(
            builder.load(acc_ptr, align=alignment),
            builder.fmul(builder.load(src_ptr, align=alignment), y_vector),
        )
        builder.store(total, acc_ptr, align=alignment)
        return context.get_dummy_value()

    return sig, codegen
