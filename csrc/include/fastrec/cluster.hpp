// K-means kernels: one Lloyd assignment pass (with the centre sums for the
// update), and squared Euclidean distances to a few vectors (k-means++).
//
// Assignment uses  ||x - c||^2 = ||x||^2 + (||c||^2 - 2 x.c)  and only needs
// argmin_c (||c||^2 - 2 x.c), so the work is a GEMM X C^T whose epilogue is
// an argmin.  The product is computed tile by tile (rows of X x one packed
// panel of centres, see gemm_tile.hpp) and every tile is folded straight into
// a running per-row, per-lane minimum; the n x k distance matrix never exists.
// Each lane of the running minimum sees its centres in increasing order and
// only replaces on a strictly smaller value, and the lanes are merged with
// ties to the smaller index, so the label is the first minimum.
//
// Determinism: rows are cut into chunks whose size depends on n alone (never
// on the thread count).  Each chunk's partial sums, counts and inertia are
// accumulated sequentially in float64 and the chunks are reduced in chunk
// order, so every output is bit-identical for any number of threads.  When
// n_chunks partial k x d sums would take too much memory (and always for CSR
// input), the sums are formed after the assignment instead: rows are bucketed
// by label (a stable counting sort) and each centre sums its rows in
// increasing row order, in parallel over centres.
#pragma once

#include "fastrec/prelude.hpp"

namespace fastrec {

// Inputs and outputs of one assignment pass over dense rows.
template <class T>
struct KMeansDenseArgs {
    const T* x = nullptr;         // IN  n x d, row-major
    const T* x_sqnorm = nullptr;  // IN  n, ||x_i||^2
    const T* weight = nullptr;    // IN  n sample weights (>= 0), or nullptr for unit weights
    const T* centers = nullptr;   // IN  k x d, row-major
    int64_t n = 0, d = 0, k = 0;  // IN
    int32_t* labels = nullptr;    // OUT n, index of the nearest centre (ties: the smaller index)
    T* min_dist = nullptr;        // OUT n, squared distance to it, clamped at 0
    double* sums = nullptr;       // OUT k x d, weighted sum of each cluster's rows; nullptr skips
    double* counts = nullptr;     // OUT k, total weight of each cluster (written with sums)
    double* inertia = nullptr;    // OUT 1, sum_i w_i * min_dist_i
    int n_threads = 1;            // IN  OpenMP threads (>= 1)
};

// The Python-visible arguments of kmeans_assign_dense, in call order, with their
// checks (see csrc/bindings/fields.hpp).  sums and counts are read only with compute_sums.
#define FASTREC_KMEANS_ASSIGN_DENSE_FIELDS(F, A)                 \
    F(x, T, IN, A.x, (bind(A.n), bind(A.d)))                     \
    F(x_sqnorm, T, IN, A.x_sqnorm, (A.n))                        \
    F(sample_weight, T, IN, A.weight, (A.n))                     \
    F(centers, T, IN, A.centers, (bind_nonempty(A.k), A.d))      \
    F(labels, int32_t, OUT, A.labels, (A.n))                     \
    F(min_dist, T, OUT, A.min_dist, (A.n))                       \
    F(sums, double, OUT, A.sums, (when(compute_sums), A.k, A.d)) \
    F(counts, double, OUT, A.counts, (when(compute_sums), A.k))  \
    F(inertia, double, OUT, A.inertia, (1))                      \
    F(compute_sums, bool, VALUE, std::ignore, ())                \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))

// The same pass over CSR rows (sorted, unique indices).
template <class T, class I>
struct KMeansCsrArgs {
    CsrView<T, I> x;              // IN  n x d
    const T* x_sqnorm = nullptr;  // IN  n
    const T* weight = nullptr;    // IN  n, or nullptr
    const T* centers = nullptr;   // IN  k x d, dense row-major
    int64_t k = 0;                // IN
    int32_t* labels = nullptr;    // OUT n
    T* min_dist = nullptr;        // OUT n
    double* sums = nullptr;       // OUT k x d, or nullptr
    double* counts = nullptr;     // OUT k
    double* inertia = nullptr;    // OUT 1
    int n_threads = 1;            // IN
};

// The Python-visible arguments of kmeans_assign_csr (see csrc/bindings/fields.hpp).
#define FASTREC_KMEANS_ASSIGN_CSR_FIELDS(F, A)                          \
    F(indptr, int64_t, IN, A.x.indptr, (bind_indptr(A.x.n_rows)))       \
    F(indices, I, IN, A.x.indices, (nnz(A.x)))                          \
    F(data, T, IN, A.x.data, (nnz(A.x)))                                \
    F(n_features, int64_t, VALUE, A.x.n_cols, (at_least(0)))            \
    F(x_sqnorm, T, IN, A.x_sqnorm, (A.x.n_rows))                        \
    F(sample_weight, T, IN, A.weight, (A.x.n_rows))                     \
    F(centers, T, IN, A.centers, (bind_nonempty(A.k), A.x.n_cols))      \
    F(labels, int32_t, OUT, A.labels, (A.x.n_rows))                     \
    F(min_dist, T, OUT, A.min_dist, (A.x.n_rows))                       \
    F(sums, double, OUT, A.sums, (when(compute_sums), A.k, A.x.n_cols)) \
    F(counts, double, OUT, A.counts, (when(compute_sums), A.k))         \
    F(inertia, double, OUT, A.inertia, (1))                             \
    F(compute_sums, bool, VALUE, std::ignore, ())                       \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))

// Squared Euclidean distances from every row of X to every row of Y.
template <class T>
struct SqDistArgs {
    const T* x = nullptr;         // IN  n x d
    const T* x_sqnorm = nullptr;  // IN  n
    const T* y = nullptr;         // IN  m x d
    int64_t n = 0, m = 0, d = 0;  // IN
    T* out = nullptr;             // OUT n x m, max(||x_i||^2 + ||y_j||^2 - 2 x_i.y_j, 0)
    int n_threads = 1;            // IN
};

// The Python-visible arguments of sqdist_dense (see csrc/bindings/fields.hpp).
#define FASTREC_SQDIST_DENSE_FIELDS(F, A)    \
    F(x, T, IN, A.x, (bind(A.n), bind(A.d))) \
    F(x_sqnorm, T, IN, A.x_sqnorm, (A.n))    \
    F(y, T, IN, A.y, (bind(A.m), A.d))       \
    F(out, T, OUT, A.out, (A.n, A.m))        \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))

// Row chunks of one pass.  At least 2048 rows each (so a chunk's partial sums
// are amortised), at most 64 chunks (enough to balance up to ~16 threads with
// a dynamic schedule).  A function of n only: see "Determinism" above.
inline int64_t kmeans_n_chunks(int64_t n) {
    constexpr int64_t kMinRows = 2048, kMaxChunks = 64;
    return std::max<int64_t>(1, std::min(kMaxChunks, (n + kMinRows - 1) / kMinRows));
}

// Whether the per-chunk partial sums fit the memory budget (64 MiB).
inline bool kmeans_fused_sums(int64_t n_chunks, int64_t k, int64_t d) {
    constexpr double kBudgetBytes = 64.0 * 1024 * 1024;
    return static_cast<double>(n_chunks) * static_cast<double>(k) * static_cast<double>(d) * 8.0 <=
           kBudgetBytes;
}

}  // namespace fastrec

FASTREC_DECLARE_FOR_EACH_ISA(template <class T> void kmeans_assign_dense(const KMeansDenseArgs<T>& args);
                             template <class T, class I> void kmeans_assign_csr(
                                 const KMeansCsrArgs<T, I>& args);
                             template <class T> void sqdist_dense(const SqDistArgs<T>& args);)

#ifdef FASTREC_ISA_NS
#include "fastrec/gemm_tile.hpp"
#include "fastrec/simd.hpp"

namespace fastrec {
namespace FASTREC_ISA_NS {
namespace kmeans_detail {

// Running minimum of (value, index) per lane, merged into one label at the end.
// Native-width vectors (see simd.hpp), like the accumulators they consume.
template <class T>
struct LaneMin {
    using V = nvec_t<T>;
    using M = decltype(V{} < V{});  // integer vector of the same width (int32 / int64 lanes)
    using E = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;  // an element of M
    static constexpr int L = NVec<T>::lanes;

    // Indices first + 0, first + 1, ..., first + L - 1.
    static M indices(int64_t first) {
        M out;
        for (int lane = 0; lane < L; ++lane) out[lane] = static_cast<E>(first + lane);
        return out;
    }

    // A strict `<` keeps the earliest centre of a lane on exact ties.
    static inline void update(V& best, M& best_idx, V dist, M idx) {
        const M less = dist < best;
        best = less ? dist : best;
        best_idx = less ? idx : best_idx;
    }

    // The smallest value over the lanes, ties to the smaller index.
    static inline void reduce(const V& best, const M& best_idx, T& value, int32_t& label) {
        T v = best[0];
        int64_t j = best_idx[0];
        for (int lane = 1; lane < L; ++lane) {
            const T w = best[lane];
            const int64_t i = best_idx[lane];
            if (w < v || (w == v && i < j)) {
                v = w;
                j = i;
            }
        }
        value = v;
        label = static_cast<int32_t>(j);
    }
};

// ||c_j||^2 in T, padded to `padded` entries with +inf so padding never wins.
template <class T>
void center_norms(const T* centers, int64_t k, int64_t d, int64_t padded, T* out) {
    for (int64_t j = 0; j < k; ++j) {
        double s = 0.0;
        for (int64_t t = 0; t < d; ++t) s += static_cast<double>(centers[j * d + t]) * centers[j * d + t];
        out[j] = static_cast<T>(s);
    }
    for (int64_t j = k; j < padded; ++j) out[j] = std::numeric_limits<T>::infinity();
}

// Per-chunk float64 accumulators, reduced in chunk order.
struct Partials {
    int64_t n_chunks, k, d;
    bool with_sums;
    AlignedBuffer<double> sums;     // n_chunks x k x d (when with_sums)
    AlignedBuffer<double> counts;   // n_chunks x k (when with_sums)
    AlignedBuffer<double> inertia;  // n_chunks

    Partials(int64_t chunks, int64_t k_, int64_t d_, bool sums_)
        : n_chunks(chunks), k(k_), d(d_), with_sums(sums_), inertia(chunks) {
        if (with_sums) {
            sums.allocate(static_cast<std::size_t>(chunks * k * d));
            counts.allocate(static_cast<std::size_t>(chunks * k));
        }
    }

    // Sums every chunk's partials in chunk order (each element on its own, so
    // the result does not depend on which thread reduced it).
    void reduce(double* out_sums, double* out_counts, double* out_inertia, int n_threads) const {
        double total = 0.0;
        for (int64_t c = 0; c < n_chunks; ++c) total += inertia[c];
        *out_inertia = total;
        if (!with_sums) return;
        const int64_t kd = k * d;
        const double* src = sums.data();
#pragma omp parallel for schedule(static) num_threads(n_threads)
        for (int64_t e = 0; e < kd; ++e) {
            double s = 0.0;
            for (int64_t c = 0; c < n_chunks; ++c) s += src[c * kd + e];
            out_sums[e] = s;
        }
        for (int64_t j = 0; j < k; ++j) {
            double s = 0.0;
            for (int64_t c = 0; c < n_chunks; ++c) s += counts[c * k + j];
            out_counts[j] = s;
        }
    }
};

// Weighted sums of each cluster's rows after the assignment: rows bucketed by
// label (stable), then each centre adds its rows in increasing row order.
// `add_row(i, w, dst)` adds w * x_i to the d values at dst.
template <class T, class AddRow>
void sums_by_label(const int32_t* labels, const T* weight, int64_t n, int64_t k, int64_t d,
                   double* sums, double* counts, int n_threads, const AddRow& add_row) {
    std::vector<int64_t> start(static_cast<std::size_t>(k) + 1, 0), order(static_cast<std::size_t>(n));
    for (int64_t i = 0; i < n; ++i) ++start[labels[i] + 1];
    for (int64_t j = 0; j < k; ++j) start[j + 1] += start[j];
    {
        std::vector<int64_t> next(start.begin(), start.end() - 1);
        for (int64_t i = 0; i < n; ++i) order[next[labels[i]]++] = i;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads)
    for (int64_t j = 0; j < k; ++j) {
        double* dst = sums + j * d;
        std::fill(dst, dst + d, 0.0);
        double count = 0.0;
        for (int64_t p = start[j]; p < start[j + 1]; ++p) {
            const int64_t i = order[p];
            const double w = weight ? static_cast<double>(weight[i]) : 1.0;
            count += w;
            add_row(i, w, dst);
        }
        counts[j] = count;
    }
}

// Rows of X kept in L2 while one panel of centres (in L1) streams over them.
template <class T>
int64_t rows_per_tile(int64_t d) {
    constexpr int64_t kTileBytes = 96 * 1024;
    const int64_t fit = kTileBytes / std::max<int64_t>(1, d * static_cast<int64_t>(sizeof(T)));
    const int64_t rows = std::min<int64_t>(512, std::max<int64_t>(gemm_tile::kRows, fit));
    return (rows / gemm_tile::kRows) * gemm_tile::kRows;
}

template <class T>
struct DenseScratch {
    using V = nvec_t<T>;
    using M = typename LaneMin<T>::M;
    // Stored as scalars (aligned, one native vector per row) because a
    // template argument cannot carry the vector type's alignment attribute.
    AlignedBuffer<T> best_store;    // rows_per_tile vectors V
    AlignedBuffer<M> best_idx;      // rows_per_tile
    AlignedBuffer<T> tail;          // kRows x d: the last, partial micro-tile of a tile, padded

    DenseScratch(int64_t tile_rows, int64_t d)
        : best_store(tile_rows * NVec<T>::lanes), best_idx(tile_rows), tail(gemm_tile::kRows * d) {}
    V* best() { return reinterpret_cast<V*>(best_store.data()); }
};

// Labels, distances and (optionally) the chunk's partial sums for rows [r0, r1).
template <class T>
void assign_dense_rows(const KMeansDenseArgs<T>& a, const T* packed, const T* cnorm, int64_t r0,
                       int64_t r1, DenseScratch<T>& s, double* part_sums, double* part_counts,
                       double& part_inertia) {
    using V = nvec_t<T>;
    using LM = LaneMin<T>;
    using M = typename LM::M;
    constexpr int L = NVec<T>::lanes;
    constexpr int R = gemm_tile::kRows;
    constexpr int NV = gemm_tile::kVecs;
    constexpr int W = gemm_tile::kPanelWidth<T>;
    const int64_t d = a.d;
    const int64_t panels = gemm_tile::n_panels<T>(a.k);
    const int64_t tile_rows = rows_per_tile<T>(d);
    const V inf = nbroadcast(std::numeric_limits<T>::infinity());
    V acc[R][NV];

    for (int64_t t0 = r0; t0 < r1; t0 += tile_rows) {
        const int64_t rows = std::min(tile_rows, r1 - t0);
        const int64_t full = (rows / R) * R;
        V* best = s.best();
        M* best_idx = s.best_idx.data();
        for (int64_t i = 0; i < rows; ++i) {
            best[i] = inf;
            best_idx[i] = M{};
        }
        if (full < rows) {  // pad the last micro-tile by repeating its last row
            for (int r = 0; r < R; ++r) {
                const int64_t src = t0 + std::min<int64_t>(full + r, rows - 1);
                std::memcpy(s.tail.data() + r * d, a.x + src * d, sizeof(T) * d);
            }
        }
        for (int64_t p = 0; p < panels; ++p) {
            const T* panel = packed + p * d * W;
            V cn[NV];
            M idx[NV];
            for (int v = 0; v < NV; ++v) {
                cn[v] = *reinterpret_cast<const V*>(cnorm + p * W + v * L);
                idx[v] = LM::indices(p * W + v * L);
            }
            for (int64_t g = 0; g < rows; g += R) {
                const bool partial = g >= full;
                const T* xg = partial ? s.tail.data() : a.x + (t0 + g) * d;
                // acc = ||c||^2 - 2 x.c directly: the panel holds -2 C.
                gemm_tile::dot_tile<T>(xg, d, panel, d, cn, acc);
                const int nr = partial ? static_cast<int>(rows - g) : R;
#pragma GCC unroll 16
                for (int r = 0; r < R; ++r) {
                    if (r >= nr) break;
                    V bv = best[g + r];
                    M bi = best_idx[g + r];
#pragma GCC unroll 16
                    for (int v = 0; v < NV; ++v) LM::update(bv, bi, acc[r][v], idx[v]);
                    best[g + r] = bv;
                    best_idx[g + r] = bi;
                }
            }
        }
        for (int64_t i = 0; i < rows; ++i) {
            const int64_t row = t0 + i;
            T value;
            int32_t label;
            LM::reduce(best[i], best_idx[i], value, label);
            const T dist = std::max(T(0), a.x_sqnorm[row] + value);
            a.labels[row] = label;
            a.min_dist[row] = dist;
            const double w = a.weight ? static_cast<double>(a.weight[row]) : 1.0;
            part_inertia += w * static_cast<double>(dist);
            if (part_sums != nullptr) {
                double* dst = part_sums + static_cast<int64_t>(label) * d;
                const T* src = a.x + row * d;
                for (int64_t t = 0; t < d; ++t) dst[t] += w * static_cast<double>(src[t]);
                part_counts[label] += w;
            }
        }
    }
}

}  // namespace kmeans_detail

template <class T>
void kmeans_assign_dense(const KMeansDenseArgs<T>& a) {
    using namespace kmeans_detail;
    const int64_t n = a.n, d = a.d, k = a.k;
    constexpr int W = gemm_tile::kPanelWidth<T>;
    const int64_t panels = gemm_tile::n_panels<T>(k);
    AlignedBuffer<T> packed(static_cast<std::size_t>(panels * d * W));
    AlignedBuffer<T> cnorm(static_cast<std::size_t>(panels * W));
    gemm_tile::pack_panels<T>(a.centers, k, d, packed.data(), T(-2));
    center_norms(a.centers, k, d, panels * W, cnorm.data());

    const int64_t n_chunks = kmeans_n_chunks(n);
    const bool want_sums = a.sums != nullptr;
    const bool fused = want_sums && kmeans_fused_sums(n_chunks, k, d);
    Partials parts(n_chunks, k, d, fused);
    const int64_t chunk_rows = (n + n_chunks - 1) / std::max<int64_t>(1, n_chunks);
    const int64_t tile_rows = rows_per_tile<T>(d);
    bool failed = false;

#pragma omp parallel num_threads(a.n_threads)
    {
        std::unique_ptr<DenseScratch<T>> scratch = thread_scratch<DenseScratch<T>>(failed, tile_rows, d);
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < n_chunks; ++c) {
            if (!scratch) continue;
            const int64_t r0 = c * chunk_rows, r1 = std::min(n, r0 + chunk_rows);
            double* ps = nullptr;
            double* pc = nullptr;
            if (fused) {
                ps = parts.sums.data() + c * k * d;
                pc = parts.counts.data() + c * k;
                std::fill(ps, ps + k * d, 0.0);
                std::fill(pc, pc + k, 0.0);
            }
            double inertia = 0.0;
            if (r0 < r1) assign_dense_rows(a, packed.data(), cnorm.data(), r0, r1, *scratch, ps, pc, inertia);
            parts.inertia[c] = inertia;
        }
    }
    if (failed) throw std::bad_alloc();
    parts.reduce(a.sums, a.counts, a.inertia, a.n_threads);
    if (want_sums && !fused) {
        sums_by_label(a.labels, a.weight, n, k, d, a.sums, a.counts, a.n_threads,
                      [&](int64_t i, double w, double* dst) {
                          const T* src = a.x + i * d;
                          for (int64_t t = 0; t < d; ++t) dst[t] += w * static_cast<double>(src[t]);
                      });
    }
}

template <class T, class I>
void kmeans_assign_csr(const KMeansCsrArgs<T, I>& a) {
    using namespace kmeans_detail;
    using V = nvec_t<T>;
    using LM = LaneMin<T>;
    using M = typename LM::M;
    constexpr int L = NVec<T>::lanes;
    const auto& x = a.x;
    const int64_t n = x.n_rows, d = x.n_cols, k = a.k;
    const int64_t kv = (k + L - 1) / L;  // SIMD vectors per row of centres

    // Centres transposed (d x kv vectors): a stored x_it adds x_it * C[:, t] to
    // the k dot products of row i, one vector FMA per L centres.
    AlignedBuffer<T> ct_store(static_cast<std::size_t>(std::max<int64_t>(1, d * kv) * L));
    V* ct = reinterpret_cast<V*>(ct_store.data());
    for (int64_t t = 0; t < d; ++t)
        for (int64_t q = 0; q < kv; ++q) {
            V v = V{};
            for (int lane = 0; lane < L; ++lane) {
                const int64_t j = q * L + lane;
                if (j < k) v[lane] = a.centers[j * d + t];
            }
            ct[t * kv + q] = v;
        }
    AlignedBuffer<T> cnorm(static_cast<std::size_t>(kv * L));
    center_norms(a.centers, k, d, kv * L, cnorm.data());

    const int64_t n_chunks = kmeans_n_chunks(n);
    const int64_t chunk_rows = (n + n_chunks - 1) / n_chunks;
    AlignedBuffer<double> part_inertia(static_cast<std::size_t>(n_chunks));
    bool failed = false;

#pragma omp parallel num_threads(a.n_threads)
    {
        // kv vectors, stored as scalars
        std::unique_ptr<AlignedBuffer<T>> dots =
            thread_scratch<AlignedBuffer<T>>(failed, static_cast<std::size_t>(kv * L));
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < n_chunks; ++c) {
            if (!dots) continue;
            V* acc = reinterpret_cast<V*>(dots->data());
            double inertia = 0.0;
            const int64_t r1 = std::min(n, (c + 1) * chunk_rows);
            for (int64_t i = c * chunk_rows; i < r1; ++i) {
                for (int64_t q = 0; q < kv; ++q) acc[q] = V{};
                for (int64_t p = x.indptr[i]; p < x.indptr[i + 1]; ++p) {
                    const T value = x.data[p];
                    const V* col = ct + static_cast<int64_t>(x.indices[p]) * kv;
                    for (int64_t q = 0; q < kv; ++q) acc[q] += value * col[q];
                }
                V best = nbroadcast(std::numeric_limits<T>::infinity());
                M best_idx = M{};
                for (int64_t q = 0; q < kv; ++q) {
                    const V cn = *reinterpret_cast<const V*>(cnorm.data() + q * L);
                    LM::update(best, best_idx, cn - T(2) * acc[q], LM::indices(q * L));
                }
                T value;
                int32_t label;
                LM::reduce(best, best_idx, value, label);
                const T dist = std::max(T(0), a.x_sqnorm[i] + value);
                a.labels[i] = label;
                a.min_dist[i] = dist;
                inertia += (a.weight ? static_cast<double>(a.weight[i]) : 1.0) * static_cast<double>(dist);
            }
            part_inertia[c] = inertia;
        }
    }
    if (failed) throw std::bad_alloc();
    double total = 0.0;
    for (int64_t c = 0; c < n_chunks; ++c) total += part_inertia[c];
    *a.inertia = total;
    if (a.sums != nullptr) {
        sums_by_label(a.labels, a.weight, n, k, d, a.sums, a.counts, a.n_threads,
                      [&](int64_t i, double w, double* dst) {
                          for (int64_t p = x.indptr[i]; p < x.indptr[i + 1]; ++p)
                              dst[x.indices[p]] += w * static_cast<double>(x.data[p]);
                      });
    }
}

namespace kmeans_detail {

template <class T, int NV>
void sqdist_dense_impl(const SqDistArgs<T>& a) {
    using V = nvec_t<T>;
    constexpr int L = NVec<T>::lanes;
    constexpr int R = gemm_tile::kRows;
    constexpr int W = gemm_tile::kPanelWidth<T, NV>;
    const int64_t n = a.n, m = a.m, d = a.d;
    const int64_t panels = gemm_tile::n_panels<T, NV>(m);
    AlignedBuffer<T> packed(static_cast<std::size_t>(std::max<int64_t>(1, panels * d * W)));
    AlignedBuffer<T> ynorm(static_cast<std::size_t>(panels * W));
    gemm_tile::pack_panels<T, NV>(a.y, m, d, packed.data());
    center_norms(a.y, m, d, panels * W, ynorm.data());
    const int64_t n_groups = (n + R - 1) / R;

#pragma omp parallel num_threads(a.n_threads)
    {
        AlignedBuffer<T> tail(static_cast<std::size_t>(R * d));
        V acc[R][NV];
        V zero[NV];
        for (int v = 0; v < NV; ++v) zero[v] = V{};
#pragma omp for schedule(static)
        for (int64_t g = 0; g < n_groups; ++g) {
            const int64_t r0 = g * R;
            const int nr = static_cast<int>(std::min<int64_t>(R, n - r0));
            const T* xg = a.x + r0 * d;
            if (nr < R) {
                for (int r = 0; r < R; ++r)
                    std::memcpy(tail.data() + r * d, a.x + (r0 + std::min(r, nr - 1)) * d, sizeof(T) * d);
                xg = tail.data();
            }
            for (int64_t p = 0; p < panels; ++p) {
                gemm_tile::dot_tile<T, NV>(xg, d, packed.data() + p * d * W, d, zero, acc);
                for (int r = 0; r < nr; ++r) {
                    T* out = a.out + (r0 + r) * m;
                    const T xn = a.x_sqnorm[r0 + r];
                    for (int v = 0; v < NV; ++v)
                        for (int lane = 0; lane < L; ++lane) {
                            const int64_t j = p * W + v * L + lane;
                            if (j >= m) break;
                            out[j] = std::max(T(0), xn + ynorm[j] - T(2) * acc[r][v][lane]);
                        }
                }
            }
        }
    }
}

}  // namespace kmeans_detail

template <class T>
void sqdist_dense(const SqDistArgs<T>& a) {
    // Few vectors (k-means++ candidates): one SIMD vector per panel, so the
    // padding of a wide panel is not multiplied.
    if (a.m <= NVec<T>::lanes)
        kmeans_detail::sqdist_dense_impl<T, 1>(a);
    else
        kmeans_detail::sqdist_dense_impl<T, gemm_tile::kVecs>(a);
}

}  // namespace FASTREC_ISA_NS
}  // namespace fastrec
#endif  // FASTREC_ISA_NS
