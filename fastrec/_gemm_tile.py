"""Register-tiled products for the Numba kernels of top-N scoring and KMeans (as gemm_tile.hpp).

The item (or centre) side is packed into panels stored feature-major; a block of
``GROUP_ROWS`` query rows is scored against one panel by :func:`dot_tile`,
written as LLVM vector IR because Numba's own loops keep such a block of
accumulators in memory.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from fastrec._runtime import NUMBA_KERNEL_OPTIONS


def _vector_bytes() -> int:
    """Width of the SIMD registers Numba compiles for: 64 (AVX-512), 32 (AVX2) or 16 bytes."""
    if getattr(nb.config, "CPU_NAME", None) is not None:  # a fixed, possibly generic, target: assume nothing
        return 16
    from llvmlite import binding

    features = binding.get_host_cpu_features()
    if features.get("avx512f", False):
        return 64
    if features.get("avx2", False) and features.get("fma", False):
        return 32
    return 16


# Register blocking as in scoring.hpp: GROUP_ROWS x VECTORS accumulators of
# VECTOR_BYTES each (+ VECTORS panel vectors + a broadcast) fit the register file.
VECTOR_BYTES = _vector_bytes()
GROUP_ROWS, VECTORS = {64: (8, 3), 32: (6, 2), 16: (4, 2)}[VECTOR_BYTES]


def panel_width(dtype) -> int:
    """Items per packed panel for ``dtype``: VECTORS vectors of VECTOR_BYTES."""
    return VECTORS * VECTOR_BYTES // np.dtype(dtype).itemsize


# Measured on topn L (69,878 x 10,677, 64 factors, numba, 2 threads): a plain Numba loop takes 2.9x as long.
@intrinsic
def dot_tile(typingctx, acc, u, row0, packed, panel):
    """acc[r, :] = scores of queries u[row0 + r] (r < GROUP_ROWS) against the items of one panel.

    ``acc`` is (GROUP_ROWS, W), ``u`` (queries, f) and ``packed`` (panels, f, W),
    all C-contiguous of one float dtype, W = panel_width(dtype); rows and the
    panel must be in range (no bounds check).  Emitted as one loop over the
    features whose GROUP_ROWS x VECTORS vector accumulators are SSA values, so
    LLVM keeps them in registers: per feature, VECTORS loads of the panel, one
    broadcast per row and one fused multiply-add per accumulator, in feature
    order (the C++ kernel's order of operations).
    """
    arrays = (acc, u, packed)
    if not all(isinstance(a, types.Array) and a.layout == "C" for a in arrays):
        return None
    if acc.ndim != 2 or u.ndim != 2 or packed.ndim != 3:
        return None
    if not (acc.dtype == u.dtype == packed.dtype and acc.dtype in (types.float32, types.float64)):
        return None
    sig = types.void(acc, u, row0, packed, panel)

    def codegen(context, builder, signature, args):
        acc_t, u_t, row_t, packed_t, panel_t = signature.args
        lanes = VECTOR_BYTES // (acc_t.dtype.bitwidth // 8)
        width = VECTORS * lanes
        intp = context.get_value_type(types.intp)
        element = context.get_value_type(acc_t.dtype)
        vector = ir.VectorType(element, lanes)
        zero = ir.Constant(intp, 0)
        acc_a = context.make_array(acc_t)(context, builder, args[0])
        u_a = context.make_array(u_t)(context, builder, args[1])
        packed_a = context.make_array(packed_t)(context, builder, args[3])
        row0 = context.cast(builder, args[2], row_t, types.intp)
        panel = context.cast(builder, args[4], panel_t, types.intp)
        f = builder.extract_value(u_a.shape, 1)
        u_base = cgutils.get_item_pointer(context, builder, u_t, u_a, [row0, zero])
        p_base = cgutils.get_item_pointer(context, builder, packed_t, packed_a, [panel, zero, zero])
        splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
        zeros = ir.Constant(vector, [0.0] * lanes)
        align = acc_t.dtype.bitwidth // 8

        entry = builder.block
        loop = builder.append_basic_block("dot_tile.loop")
        done = builder.append_basic_block("dot_tile.done")
        builder.cbranch(builder.icmp_signed(">", f, zero), loop, done)

        builder.position_at_end(loop)
        t = builder.phi(intp)
        accs = [[builder.phi(vector) for _ in range(VECTORS)] for _ in range(GROUP_ROWS)]
        row = builder.gep(p_base, [builder.mul(t, ir.Constant(intp, width))])
        b = [
            builder.load(
                builder.bitcast(builder.gep(row, [ir.Constant(intp, v * lanes)]), vector.as_pointer()),
                align=align,
            )
            for v in range(VECTORS)
        ]
        updated = []
        for r in range(GROUP_ROWS):
            offset = builder.add(builder.mul(ir.Constant(intp, r), f), t)
            a = builder.load(builder.gep(u_base, [offset]), align=align)
            a = builder.insert_element(ir.Constant(vector, None), a, ir.Constant(ir.IntType(32), 0))
            a = builder.shuffle_vector(a, ir.Constant(vector, None), splat_mask)
            updated.append(
                [
                    builder.fadd(accs[r][v], builder.fmul(a, b[v], flags=["contract"]), flags=["contract"])
                    for v in range(VECTORS)
                ]
            )
        t_next = builder.add(t, ir.Constant(intp, 1))
        t.add_incoming(zero, entry)
        t.add_incoming(t_next, loop)
        for r in range(GROUP_ROWS):
            for v in range(VECTORS):
                accs[r][v].add_incoming(zeros, entry)
                accs[r][v].add_incoming(updated[r][v], loop)
        builder.cbranch(builder.icmp_signed("<", t_next, f), loop, done)

        builder.position_at_end(done)
        results = []
        for r in range(GROUP_ROWS):
            for v in range(VECTORS):
                result = builder.phi(vector)
                result.add_incoming(zeros, entry)
                result.add_incoming(updated[r][v], loop)
                results.append(result)
        for r in range(GROUP_ROWS):
            for v in range(VECTORS):
                dst = cgutils.get_item_pointer(
                    context, builder, acc_t, acc_a, [ir.Constant(intp, r), ir.Constant(intp, v * lanes)]
                )
                builder.store(
                    results[r * VECTORS + v], builder.bitcast(dst, vector.as_pointer()), align=align
                )
        return context.get_dummy_value()

    return sig, codegen


@nb.njit(parallel=True, **NUMBA_KERNEL_OPTIONS)
def pack_panels(v, width):
    """V as (n_panels, f, width): panel p, feature t, lane j is V[p * width + j, t]; zeros past the end."""
    m, f = v.shape
    n_panels = (m + width - 1) // width
    out = np.zeros((n_panels, f, width), dtype=v.dtype)
    for p in nb.prange(n_panels):
        for j in range(min(width, m - p * width)):
            for t in range(f):
                out[p, t, j] = v[p * width + j, t]
    return out
