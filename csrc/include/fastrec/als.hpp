// Implicit-feedback alternating least squares (Hu, Koren and Volinsky 2008): one half-step.
//
// One call solves every row x_u of X (users, or items) with Y (the other side)
// fixed.  Row u's stored entries have preference 1 and confidence 1 + w (w > 0
// given per entry); every other column has preference 0 and confidence 1, so
// the normal equations are
//
//   (G + reg I + sum_i w_i y_i y_i^T) x_u = sum_i (1 + w_i) y_i,   G = Y^T Y,
//
// the sums over the row's entries only.  The Gram matrix G is computed once per
// call; then each row, on its own:
//
//   * exact: the k x k matrix is formed in double and factored (Cholesky);
//   * otherwise cg_steps conjugate-gradient steps start from the current x_u
//     (Takacs et al. 2011, as implicit does on the CPU): every matrix-vector
//     product is G v plus one pass over the row's entries, sum_i w_i (y_i . v) y_i,
//     and the first residual b - A x rides on the same pass.
//
// Determinism: the rows are independent, and G is summed by tasks that each own
// a few rows of G and walk the rows of Y in order (flushing float partial sums
// of kGramChunk rows into double), so the result depends neither on the thread
// count nor on the schedule.  fastrec/implicit/als/_reference.py defines the
// arithmetic; _numba.py is the same algorithm.
//
// Factor rows are `stride` elements long, stride a multiple of the 64-byte SIMD
// width, rows 64-byte aligned, the lanes past n_factors zero (and kept zero).
#pragma once

#include "fastrec/prelude.hpp"

namespace fastrec {

template <class T>
struct AlsHalfStepArgs {
    const int64_t* indptr;   // IN    (n_rows + 1) entries of row u: [indptr[u], indptr[u+1])
    const int32_t* indices;  // IN    (nnz) row of Y of every entry
    const T* weights;        // IN    (nnz) confidence minus one of every entry (preference 1)
    T* X;                    // INOUT (n_rows x stride) the side solved
    const T* Y;              // IN    (n_cols x stride) the side fixed
    int64_t n_rows, n_cols;  // IN    rows of X and Y
    int64_t nnz;             // IN    entries, indptr[n_rows]
    int64_t stride;          // IN    row length, a multiple of 64 / sizeof(T)
    int64_t n_factors;       // IN    factors per row, <= stride; the rest is padding
    double reg;              // IN    L2 penalty (>= 0)
    bool exact;              // IN    Cholesky solve instead of conjugate gradient
    int64_t cg_steps;        // IN    CG steps per row (>= 1)
    int n_threads;           // IN    OpenMP threads (>= 1)
};

// The Python-visible arguments of als_half_step, in call order (see
// csrc/bindings/fields.hpp); the binding also checks the offsets, the indices
// and the factor rows' padding and alignment.
#define FASTREC_ALS_HALF_STEP_FIELDS(F, A)                             \
    F(indptr, int64_t, IN_EXACT, A.indptr, (bind_indptr(A.n_rows)))    \
    F(indices, int32_t, IN_EXACT, A.indices, (bind(A.nnz)))            \
    F(weights, T, IN_EXACT, A.weights, (A.nnz))                        \
    F(X, T, INOUT, A.X, (A.n_rows, bind(A.stride)))                    \
    F(Y, T, IN_EXACT, A.Y, (bind(A.n_cols), A.stride))                 \
    F(n_factors, int64_t, VALUE, A.n_factors, (in_range(1, A.stride))) \
    F(reg, double, VALUE, A.reg, (finite_at_least(0)))                 \
    F(exact, bool, VALUE, A.exact, ())                                 \
    F(cg_steps, int64_t, VALUE, A.cg_steps, (at_least(1)))             \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))

}  // namespace fastrec

FASTREC_DECLARE_FOR_EACH_ISA(template <class T> void als_half_step(const AlsHalfStepArgs<T>& args);)

#ifdef FASTREC_ISA_NS
#include "fastrec/simd.hpp"

#define FASTREC_ALS_INLINE __attribute__((always_inline)) inline

namespace fastrec {
namespace FASTREC_ISA_NS {
namespace als_detail {

// Stop a row's CG when its squared residual falls below this (the next step would be 0 / 0).
constexpr double kCgTolerance = 1e-20;
// Rows of Y whose Gram products are summed in registers before they are added in double.
constexpr int64_t kGramChunk = 256;
// Rows of X per unit of the dynamic schedule: rows are cheap, their lengths power-law.
constexpr int kRowChunk = 16;
// Rows of up to kMaxFixedVec vectors get kernels with the length fixed at compile time.
constexpr int kMaxFixedVec = 8;
// Entries ahead whose rows of Y are prefetched.
constexpr int64_t kPrefetchAhead = 6;

// Every lane = the sum of v's lanes (a butterfly: the same sum in every lane).
FASTREC_ALS_INLINE vec64_t<float> lane_sum(vec64_t<float> v) {
    v += __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    v += __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    v += __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
    return v;
}

FASTREC_ALS_INLINE vec64_t<double> lane_sum(vec64_t<double> v) {
    v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3);
    v += __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5);
    v += __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6);
    return v;
}

template <class T>
FASTREC_ALS_INLINE vec64_t<T> splat(T x) {
    return x - vec64_t<T>{};
}

// <a, b> over nv vectors, in every lane; two accumulators halve the dependency chain.
template <class T, int NV>
FASTREC_ALS_INLINE vec64_t<T> dot(const vec64_t<T>* a, const vec64_t<T>* b, int64_t nv_rt) {
    const int64_t nv = NV > 0 ? NV : nv_rt;
    vec64_t<T> s0 = {}, s1 = {};
    int64_t v = 0;
    for (; v + 1 < nv; v += 2) {
        s0 += a[v] * b[v];
        s1 += a[v + 1] * b[v + 1];
    }
    if (v < nv) s0 += a[v] * b[v];
    return lane_sum(s0 + s1);
}

template <class T>
struct Context {
    const AlsHalfStepArgs<T>& a;
    const T* G;  // (n_factors x stride) Y^T Y + reg I in T, padding lanes zero
};

template <class T>
FASTREC_ALS_INLINE void prefetch_row(const T* row, int64_t nv) {
    const char* bytes = reinterpret_cast<const char*>(row);
    for (int64_t v = 0; v < nv; ++v) __builtin_prefetch(bytes + 64 * v, 0, 3);
}

// out = s G v + sum_i (a_i + b_i (y_i . v)) y_i over the entries [begin, end), where
// kResidual: s = -1, a_i = 1 + w_i, b_i = -w_i (the residual b - A v)
// otherwise: s = +1, a_i = 0,       b_i = w_i  (the product A v).
template <class T, int NV, bool kResidual>
FASTREC_ALS_INLINE void product(const Context<T>& c, int64_t begin, int64_t end,
                                const vec64_t<T>* __restrict v_in, vec64_t<T>* __restrict out,
                                int64_t nv_rt) {
    using V = vec64_t<T>;
    const AlsHalfStepArgs<T>& a = c.a;
    const int64_t nv = NV > 0 ? NV : nv_rt;
    const int64_t k = a.n_factors;
    const T* vs = reinterpret_cast<const T*>(v_in);
    // G v with two accumulator sets (even and odd j) for twice the FMA chains.
    V acc0[NV > 0 ? NV : 1], acc1[NV > 0 ? NV : 1];
    V* o0 = NV > 0 ? acc0 : out;
    for (int64_t q = 0; q < nv; ++q) o0[q] = V{};
    if constexpr (NV > 0) {
        for (int64_t q = 0; q < nv; ++q) acc1[q] = V{};
        int64_t j = 0;
        for (; j + 1 < k; j += 2) {
            const V* g0 = reinterpret_cast<const V*>(c.G + j * a.stride);
            const V* g1 = reinterpret_cast<const V*>(c.G + (j + 1) * a.stride);
            const V b0 = splat(vs[j]), b1 = splat(vs[j + 1]);
#pragma GCC unroll 8
            for (int q = 0; q < NV; ++q) {
                acc0[q] += b0 * g0[q];
                acc1[q] += b1 * g1[q];
            }
        }
        if (j < k) {
            const V* g0 = reinterpret_cast<const V*>(c.G + j * a.stride);
            const V b0 = splat(vs[j]);
#pragma GCC unroll 8
            for (int q = 0; q < NV; ++q) acc0[q] += b0 * g0[q];
        }
#pragma GCC unroll 8
        for (int q = 0; q < NV; ++q) acc0[q] = kResidual ? -(acc0[q] + acc1[q]) : acc0[q] + acc1[q];
    } else {
        for (int64_t j = 0; j < k; ++j) {
            const V* g = reinterpret_cast<const V*>(c.G + j * a.stride);
            const V b = splat(vs[j]);
            for (int64_t q = 0; q < nv; ++q) o0[q] += b * g[q];
        }
        if (kResidual)
            for (int64_t q = 0; q < nv; ++q) o0[q] = -o0[q];
    }
    // The entries: one load of y_i serves the dot product and the update.
    for (int64_t e = begin; e < end; ++e) {
        if (e + kPrefetchAhead < end)
            prefetch_row(a.Y + int64_t(a.indices[e + kPrefetchAhead]) * a.stride, nv);
        const V* y = reinterpret_cast<const V*>(a.Y + int64_t(a.indices[e]) * a.stride);
        const V d = dot<T, NV>(y, v_in, nv);
        const T w = a.weights[e];
        const V coef = kResidual ? splat<T>(T(1) + w) - splat<T>(w) * d : splat<T>(w) * d;
        if constexpr (NV > 0) {
#pragma GCC unroll 8
            for (int q = 0; q < NV; ++q) acc0[q] += coef * y[q];
        } else {
            for (int64_t q = 0; q < nv; ++q) o0[q] += coef * y[q];
        }
    }
    if constexpr (NV > 0) {
#pragma GCC unroll 8
        for (int q = 0; q < NV; ++q) out[q] = acc0[q];
    }
}

// cg_steps CG steps on row u from its current factors.  `scratch` holds 4 * nv
// vectors for the run-time length (NV = 0), as many as a Gram task's accumulators.
template <class T, int NV>
void cg_row(const Context<T>& c, int64_t u, vec64_t<T>* scratch, int64_t nv_rt) {
    using V = vec64_t<T>;
    const AlsHalfStepArgs<T>& a = c.a;
    const int64_t nv = NV > 0 ? NV : nv_rt;
    V xl[NV > 0 ? NV : 1], rl[NV > 0 ? NV : 1], pl[NV > 0 ? NV : 1], apl[NV > 0 ? NV : 1];
    V* x = NV > 0 ? xl : scratch;
    V* r = NV > 0 ? rl : scratch + nv;
    V* p = NV > 0 ? pl : scratch + 2 * nv;
    V* ap = NV > 0 ? apl : scratch + 3 * nv;
    V* row = reinterpret_cast<V*>(a.X + u * a.stride);
    const int64_t begin = a.indptr[u], end = a.indptr[u + 1];
    for (int64_t q = 0; q < nv; ++q) x[q] = row[q];
    product<T, NV, true>(c, begin, end, x, r, nv);
    for (int64_t q = 0; q < nv; ++q) p[q] = r[q];
    T rs_old = dot<T, NV>(r, r, nv)[0];
    for (int64_t step = 0; step < a.cg_steps; ++step) {
        if (!(rs_old >= T(kCgTolerance))) break;
        product<T, NV, false>(c, begin, end, p, ap, nv);
        const T pap = dot<T, NV>(p, ap, nv)[0];
        if (!(pap > T(0))) break;
        const V alpha = splat<T>(rs_old / pap);
        for (int64_t q = 0; q < nv; ++q) {
            x[q] += alpha * p[q];
            r[q] -= alpha * ap[q];
        }
        const T rs_new = dot<T, NV>(r, r, nv)[0];
        const V beta = splat<T>(rs_new / rs_old);
        for (int64_t q = 0; q < nv; ++q) p[q] = r[q] + beta * p[q];
        rs_old = rs_new;
    }
    for (int64_t q = 0; q < nv; ++q) row[q] = x[q];
}

// The exact solve of row u: the matrix in double (from Gd, Y^T Y + reg I in
// double), its Cholesky factor in place, two triangular solves.  `A` holds k * k
// and `b` k doubles.
template <class T>
void exact_row(const AlsHalfStepArgs<T>& a, const double* Gd, int64_t u, double* A, double* b) {
    const int64_t k = a.n_factors;
    std::copy(Gd, Gd + k * k, A);
    std::fill(b, b + k, 0.0);
    for (int64_t e = a.indptr[u]; e < a.indptr[u + 1]; ++e) {
        const T* y = a.Y + int64_t(a.indices[e]) * a.stride;
        const double w = static_cast<double>(a.weights[e]);
        for (int64_t i = 0; i < k; ++i) {
            const double yi = static_cast<double>(y[i]);
            b[i] += (1.0 + w) * yi;
            const double wy = w * yi;
            double* Ai = A + i * k;
            for (int64_t j = 0; j <= i; ++j) Ai[j] += wy * static_cast<double>(y[j]);
        }
    }
    // Lower Cholesky factor in place (row-major, lower triangle).
    for (int64_t j = 0; j < k; ++j) {
        double* Aj = A + j * k;
        double s = Aj[j];
        for (int64_t t = 0; t < j; ++t) s -= Aj[t] * Aj[t];
        const double d = s > 0.0 ? std::sqrt(s) : 0.0;
        Aj[j] = d;
        for (int64_t i = j + 1; i < k; ++i) {
            double* Ai = A + i * k;
            double v = Ai[j];
            for (int64_t t = 0; t < j; ++t) v -= Ai[t] * Aj[t];
            Ai[j] = d > 0.0 ? v / d : 0.0;
        }
    }
    for (int64_t i = 0; i < k; ++i) {
        const double* Ai = A + i * k;
        double s = b[i];
        for (int64_t t = 0; t < i; ++t) s -= Ai[t] * b[t];
        b[i] = Ai[i] > 0.0 ? s / Ai[i] : 0.0;
    }
    for (int64_t i = k - 1; i >= 0; --i) {
        double s = b[i];
        for (int64_t t = i + 1; t < k; ++t) s -= A[t * k + i] * b[t];
        b[i] = A[i * k + i] > 0.0 ? s / A[i * k + i] : 0.0;
    }
    T* row = a.X + u * a.stride;
    for (int64_t i = 0; i < k; ++i) row[i] = static_cast<T>(b[i]);
}

// Rows of G per Gram task, so that the task's accumulators fit the registers; the
// run-time length (NV = 0) keeps 4 rows' accumulators in scratch (each task reads Y once).
template <int NV>
constexpr int gram_rows() {
    return NV == 0 ? 4 : NV >= 8 ? 2 : NV >= 4 ? 4 : NV >= 2 ? 8 : 16;
}

// Rows [r0, r0 + n_rows_g) of Gd (double, k x k) += Y^T Y over every row of Y, in order.
template <class T, int NV>
void gram_task(const AlsHalfStepArgs<T>& a, int64_t r0, double* Gd, vec64_t<T>* scratch) {
    using V = vec64_t<T>;
    constexpr int RG = gram_rows<NV>();
    constexpr int L = Vec64<T>::lanes;
    const int64_t k = a.n_factors;
    const int64_t nv = NV > 0 ? NV : a.stride / L;
    const int64_t rows = std::min<int64_t>(RG, k - r0);
    V accl[NV > 0 ? RG * NV : 1];
    V* acc = NV > 0 ? accl : scratch;
    for (int64_t t0 = 0; t0 < a.n_cols; t0 += kGramChunk) {
        const int64_t t1 = std::min(a.n_cols, t0 + kGramChunk);
        for (int64_t q = 0; q < RG * nv; ++q) acc[q] = V{};
        for (int64_t t = t0; t < t1; ++t) {
            const T* yrow = a.Y + t * a.stride;
            const V* y = reinterpret_cast<const V*>(yrow);
            if constexpr (NV > 0) {
                V yv[NV];
#pragma GCC unroll 8
                for (int q = 0; q < NV; ++q) yv[q] = y[q];
#pragma GCC unroll 16
                for (int r = 0; r < RG; ++r) {
                    const V b = splat(yrow[r0 + r]);  // r0 + r < stride: padding lanes are zero
#pragma GCC unroll 8
                    for (int q = 0; q < NV; ++q) acc[r * NV + q] += b * yv[q];
                }
            } else {
                for (int r = 0; r < RG; ++r) {
                    const V b = splat(yrow[r0 + r]);
                    V* row_acc = acc + r * nv;
                    for (int64_t q = 0; q < nv; ++q) row_acc[q] += b * y[q];
                }
            }
        }
        for (int64_t r = 0; r < rows; ++r) {
            const T* s = reinterpret_cast<const T*>(acc + r * nv);
            double* g = Gd + (r0 + r) * k;
            for (int64_t col = 0; col < k; ++col) g[col] += static_cast<double>(s[col]);
        }
    }
}

// Every row of G, the tasks on the threads of the enclosing parallel region.
template <class T, int NV>
void gram(const AlsHalfStepArgs<T>& a, double* Gd, vec64_t<T>* scratch) {
    constexpr int RG = gram_rows<NV>();
    const int64_t n_tasks = (a.n_factors + RG - 1) / RG;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < n_tasks; ++task) gram_task<T, NV>(a, task * RG, Gd, scratch);
}

inline int thread_index() {
#if FASTREC_HAVE_OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

template <class T, int NV>
void half_step(const AlsHalfStepArgs<T>& a) {
    using V = vec64_t<T>;
    const int64_t k = a.n_factors;
    const int64_t nv = a.stride / Vec64<T>::lanes;
    const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(a.n_threads, a.n_rows)));
    // All scratch is allocated here: no exception may leave the parallel region.
    std::vector<double> Gd(static_cast<size_t>(k * k), 0.0);
    AlignedBuffer<T> G(static_cast<size_t>(k * a.stride));
    const size_t vecs = static_cast<size_t>(4 * nv);
    AlignedBuffer<T> vscratch(static_cast<size_t>(threads) * vecs * Vec64<T>::lanes);
    const size_t doubles = a.exact ? static_cast<size_t>(k * k + k) : 0;
    std::vector<double> dscratch(static_cast<size_t>(threads) * doubles);
    const Context<T> c{a, G.data()};
#pragma omp parallel num_threads(threads)
    {
        const size_t tid = static_cast<size_t>(thread_index());
        V* vs = reinterpret_cast<V*>(vscratch.data()) + tid * vecs;
        gram<T, NV>(a, Gd.data(), vs);  // ends with the barrier of its omp for
#pragma omp single
        {
            for (int64_t i = 0; i < k; ++i) {
                Gd[static_cast<size_t>(i * k + i)] += a.reg;
                for (int64_t j = 0; j < a.stride; ++j)
                    G[static_cast<size_t>(i * a.stride + j)] =
                        j < k ? static_cast<T>(Gd[static_cast<size_t>(i * k + j)]) : T(0);
            }
        }  // implicit barrier
        if (a.exact) {
            double* A = dscratch.data() + tid * doubles;
#pragma omp for schedule(dynamic, kRowChunk)
            for (int64_t u = 0; u < a.n_rows; ++u) exact_row(a, Gd.data(), u, A, A + k * k);
        } else {
#pragma omp for schedule(dynamic, kRowChunk)
            for (int64_t u = 0; u < a.n_rows; ++u) cg_row<T, NV>(c, u, vs, nv);
        }
    }
}

template <class T, int NV = 1>
void dispatch(const AlsHalfStepArgs<T>& a) {
    if constexpr (NV > kMaxFixedVec) {
        half_step<T, 0>(a);
    } else {
        if (a.stride == NV * Vec64<T>::lanes) return half_step<T, NV>(a);
        dispatch<T, NV + 1>(a);
    }
}

}  // namespace als_detail

template <class T>
void als_half_step(const AlsHalfStepArgs<T>& a) {
    if (a.n_rows == 0) return;
    als_detail::dispatch<T>(a);
}

}  // namespace FASTREC_ISA_NS
}  // namespace fastrec
#endif  // FASTREC_ISA_NS
