// A register-blocked dot-product micro-kernel for "rows x packed panel" tiles.
//
// Several kernels need X C^T for a block of rows of X against a set of vectors C
// (k-means assignment, pairwise distances, scoring of factor models) but want
// to consume each block of products immediately (an argmin, a top-k) instead of
// writing the full product to memory.  This header gives them the GEMM core:
//
//   * pack_panels() lays C out as panels of kPanelWidth<T> vectors, each panel
//     stored feature-major ("for feature t: kVecs SIMD vectors of C[., t]"), so
//     the inner loop reads whole aligned SIMD vectors of C;
//   * dot_tile() computes kRows rows of X against one panel, holding all
//     kRows x kVecs accumulators in registers and reading each element of X
//     once as a broadcast (one FMA per accumulator per feature).
//
// The caller keeps the panel in L1 (a panel is kPanelWidth * d values) and
// streams rows of X through it, then applies its own epilogue to the
// accumulators.  The vectors are of the native width (simd.hpp's nvec_t: zmm,
// ymm or xmm), and the blocking (kRows x kVecs) is chosen per SIMD level so that
// the accumulators, the panel vectors and a broadcast fit in the register file:
// 32 zmm registers under AVX-512, 16 ymm under AVX2, 16 xmm on baseline x86-64
// (which has no FMA, so a product needs one more register).
#pragma once

#include "fastrec/prelude.hpp"

// Register blocking per SIMD level, looked up by the ISA namespace name.
// avx512: 24 zmm accumulators + 3 panel vectors + 1 broadcast (of 32).
// avx2: 12 ymm accumulators + 2 panel vectors + 1 broadcast (of 16).
// baseline: 8 xmm accumulators + 2 panel vectors + 1 broadcast + 1 product (of 16).
#define FASTREC_GEMM_ROWS_avx512 8
#define FASTREC_GEMM_VECS_avx512 3
#define FASTREC_GEMM_ROWS_avx2 6
#define FASTREC_GEMM_VECS_avx2 2
#define FASTREC_GEMM_ROWS_baseline 4
#define FASTREC_GEMM_VECS_baseline 2
#define FASTREC_GEMM_CAT2(a, b) a##b
#define FASTREC_GEMM_CAT(a, b) FASTREC_GEMM_CAT2(a, b)

#ifdef FASTREC_ISA_NS
#include "fastrec/simd.hpp"

namespace fastrec {
namespace FASTREC_ISA_NS {
namespace gemm_tile {

// Rows of X per micro-tile, and SIMD vectors of C per panel.
constexpr int kRows = FASTREC_GEMM_CAT(FASTREC_GEMM_ROWS_, FASTREC_ISA_NS);
constexpr int kVecs = FASTREC_GEMM_CAT(FASTREC_GEMM_VECS_, FASTREC_ISA_NS);

template <class T>
constexpr int kLanes = NVec<T>::lanes;

// Vectors of C per panel.  NV (SIMD vectors per panel) defaults to the
// register-blocked width; a caller with few vectors of C (say 7) may pick
// NV = 1 so that it does not multiply padding.
template <class T, int NV = kVecs>
constexpr int kPanelWidth = NV * NVec<T>::lanes;

template <class T, int NV = kVecs>
inline int64_t n_panels(int64_t m) {
    return (m + kPanelWidth<T, NV> - 1) / kPanelWidth<T, NV>;
}

// Packs the m x d row-major matrix `c` into n_panels(m) panels of
// d x kPanelWidth values; vectors past m are zero.  `out` holds
// n_panels(m) * d * kPanelWidth values and is aligned to a native vector.
// Every value is multiplied by `scale` (k-means packs -2 C so that its
// epilogue needs no extra multiply).
template <class T, int NV = kVecs>
void pack_panels(const T* c, int64_t m, int64_t d, T* out, T scale = T(1)) {
    constexpr int width = kPanelWidth<T, NV>;
    const int64_t panels = n_panels<T, NV>(m);
    for (int64_t p = 0; p < panels; ++p) {
        T* panel = out + p * d * width;
        for (int j = 0; j < width; ++j) {
            const int64_t row = p * width + j;
            if (row < m) {
                const T* src = c + row * d;
                for (int64_t t = 0; t < d; ++t) panel[t * width + j] = scale * src[t];
            } else {
                for (int64_t t = 0; t < d; ++t) panel[t * width + j] = T(0);
            }
        }
    }
}

// acc[r][v][lane] = start[v][lane] + <x_r, c_{v * lanes + lane}> for the
// kRows rows starting at `x` (row stride ldx) and the vectors of one packed
// panel.  `start` lets an epilogue's additive term ride along for free.
template <class T, int NV = kVecs>
inline void dot_tile(const T* __restrict x, int64_t ldx, const T* __restrict panel, int64_t d,
                     const nvec_t<T> (&start)[NV], nvec_t<T> (&acc)[kRows][NV]) {
    using V = nvec_t<T>;
    constexpr int L = NVec<T>::lanes;
#pragma GCC unroll 16
    for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) acc[r][v] = start[v];
    for (int64_t t = 0; t < d; ++t) {
        const V* b = reinterpret_cast<const V*>(panel + t * NV * L);
        V bv[NV];
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) bv[v] = b[v];
#pragma GCC unroll 16
        for (int r = 0; r < kRows; ++r) {
            const V a = nbroadcast(x[r * ldx + t]);
#pragma GCC unroll 16
            for (int v = 0; v < NV; ++v) acc[r][v] += a * bv[v];
        }
    }
}

}  // namespace gemm_tile
}  // namespace FASTREC_ISA_NS
}  // namespace fastrec
#endif  // FASTREC_ISA_NS
