// Sparse cosine similarity with top-k neighbours per row.
//
//   sim(i, j) = <x_i, y_j> / (||x_i|| * ||y_j|| + shrink)
//
// For every requested row i of X the kernel keeps the k largest non-zero
// similarities (ties to the smaller j) without ever forming the n x m product.
//
// Algorithm: row-by-row sparse accumulation (Gustavson) through Y's transpose,
// with a dense per-thread accumulator and a list of touched columns.  Rows whose
// features are popular overlap heavily, so rows are processed in groups of one
// SIMD vector width (16 floats / 8 doubles): the group's rows are spread into a
// dense "feature x lane" tile, and each non-zero y_fj then updates all lanes of
// column j with one vector FMA instead of one scalar update per row.  A group
// takes that vector path only when it does less memory traffic than the scalar
// path would; the choice depends on the data alone, never on the thread count,
// so results are identical for any number of threads.
#pragma once

#include "fastrec/prelude.hpp"

namespace fastrec {

// Inputs and outputs of one call; every array is owned by the caller.
template <class T, class I>
struct CosineTopkArgs {
    CsrView<T, I> x;      // IN  n x d, the rows to compare (sorted, unique indices)
    CsrView<T, I> yt;     // IN  d x m, the transpose of the candidate rows Y
    int64_t row_begin;    // IN  first row of x to compute
    int64_t row_end;      // IN  one past the last row of x to compute
    int64_t k;            // IN  neighbours kept per row (>= 1)
    double shrink;        // IN  added to the norm product (>= 0)
    bool same_matrix;     // IN  Y is X: row i of X is column i of the result
    bool exclude_self;    // IN  with same_matrix, never return j == i
    I* out_indices;       // OUT (row_end - row_begin) x k, best first
    T* out_scores;        // OUT (row_end - row_begin) x k
    int64_t* out_counts;  // OUT (row_end - row_begin) entries kept per row
    int n_threads;        // IN  OpenMP threads (>= 1)
};

}  // namespace fastrec

FASTREC_DECLARE_FOR_EACH_ISA(template <class T, class I> void cosine_topk(const CosineTopkArgs<T, I>& args);)

#ifdef FASTREC_ISA_NS
#include "fastrec/simd.hpp"
#include "fastrec/topk.hpp"

namespace fastrec {
namespace FASTREC_ISA_NS {
namespace cosine_detail {

// A group takes the vector path when its union of features costs at most this
// fraction of the scalar path's per-row work.  A vector update moves a full
// cache line where a scalar update moves one element, but does up to 16 rows'
// work; measured on power-law data the break-even sits near 1/2.
constexpr double kVectorWorkRatio = 0.5;

// Euclidean norm of every row of Y, read from its transpose in a fixed order.
template <class T, class I>
std::vector<double> candidate_norms(const CsrView<T, I>& yt) {
    std::vector<double> sq(static_cast<std::size_t>(yt.n_cols), 0.0);
    for (int64_t f = 0; f < yt.n_rows; ++f)
        for (int64_t p = yt.indptr[f]; p < yt.indptr[f + 1]; ++p) {
            double v = static_cast<double>(yt.data[p]);
            sq[static_cast<std::size_t>(yt.indices[p])] += v * v;
        }
    for (double& s : sq) s = std::sqrt(s);
    return sq;
}

template <class T, class I>
double row_norm(const CsrView<T, I>& x, int64_t row) {
    double sq = 0.0;
    for (int64_t p = x.indptr[row]; p < x.indptr[row + 1]; ++p) {
        double v = static_cast<double>(x.data[p]);
        sq += v * v;
    }
    return std::sqrt(sq);
}

// Turns dot products into similarities.  With shrink == 0 it multiplies by
// precomputed inverse norms; otherwise it divides by (|x||y| + shrink).
template <class T>
struct Scorer {
    const T* y_norm;      // (m) ||y_j||
    const T* y_inv_norm;  // (m) 1 / ||y_j||, 0 for empty rows
    T shrink;

    T score(T dot, T x_norm, T x_inv_norm, int64_t j) const {
        if (shrink == T(0)) return dot * (x_inv_norm * y_inv_norm[j]);
        return dot / (x_norm * y_norm[j] + shrink);
    }
    vec64_t<T> score(vec64_t<T> dot, vec64_t<T> x_norm, vec64_t<T> x_inv_norm, int64_t j) const {
        if (shrink == T(0)) return dot * (x_inv_norm * y_inv_norm[j]);
        return dot / (x_norm * y_norm[j] + shrink);
    }
};

// Per-thread scratch, sized once per call.
template <class T, class I>
struct Scratch {
    static constexpr int lanes = Vec64<T>::lanes;

    AlignedBuffer<int32_t> stamp;      // (m) id of the last task that touched column j
    AlignedBuffer<I> touched;          // (m) columns touched by the current task
    AlignedBuffer<T> acc;              // (m) scalar path: dot products
    AlignedBuffer<T> tile_acc;         // (m x lanes) vector path: dot products, lazily
    AlignedBuffer<T> tile_rows;        // (d x lanes) vector path: the group's rows, lazily
    AlignedBuffer<uint64_t> features;  // (d / 64) vector path: union of the group's features
    AlignedBuffer<T> heap_scores;      // (lanes x k)
    AlignedBuffer<I> heap_indices;     // (lanes x k)
    int32_t current = 0;

    Scratch(int64_t m, int64_t d, int64_t k)
        : stamp(m), touched(m), acc(m), features((d + 63) / 64),
          heap_scores(lanes * k), heap_indices(lanes * k) {
        stamp.zero();
        features.zero();
    }

    // A fresh stamp value; stamps make clearing the accumulator unnecessary.
    int32_t next_stamp() {
        if (current == std::numeric_limits<int32_t>::max()) {
            stamp.zero();
            current = 0;
        }
        return ++current;
    }

    void ensure_tiles(int64_t m, int64_t d) {
        if (tile_acc.data() == nullptr) {
            tile_acc.allocate(static_cast<std::size_t>(m) * lanes);
            tile_rows.allocate(static_cast<std::size_t>(d) * lanes);
        }
    }
};

template <class T, class I>
struct Problem {
    const CosineTopkArgs<T, I>& args;
    const int64_t* row_work;  // (d) cost of one scalar pass over feature f = nnz of yt row f
    Scorer<T> scorer;
    const T* x_norm;          // (rows) ||x_i|| for the requested rows
    const T* x_inv_norm;      // (rows)
    int64_t k;                // min(args.k, m)

    bool skip(int64_t row, int64_t j) const {
        return args.same_matrix && args.exclude_self && j == row;
    }
};

// One row, scalar accumulation.
template <class T, class I>
void scalar_row(const Problem<T, I>& pb, Scratch<T, I>& s, int64_t row) {
    const auto& x = pb.args.x;
    const auto& yt = pb.args.yt;
    const int32_t stamp = s.next_stamp();
    int32_t* mark = s.stamp.data();
    T* acc = s.acc.data();
    I* touched = s.touched.data();
    int64_t n_touched = 0;

    for (int64_t p = x.indptr[row]; p < x.indptr[row + 1]; ++p) {
        const I f = x.indices[p];
        const T xv = x.data[p];
        for (int64_t q = yt.indptr[f]; q < yt.indptr[f + 1]; ++q) {
            const I j = yt.indices[q];
            const T prod = xv * yt.data[q];
            if (mark[j] != stamp) {
                mark[j] = stamp;
                acc[j] = prod;
                touched[n_touched++] = j;
            } else {
                acc[j] += prod;
            }
        }
    }

    const int64_t local = row - pb.args.row_begin;
    TopK<T, I> heap(s.heap_scores.data(), s.heap_indices.data(), pb.k);
    const T xn = pb.x_norm[local], xinv = pb.x_inv_norm[local];
    T threshold = heap.threshold();
    for (int64_t t = 0; t < n_touched; ++t) {
        const I j = touched[t];
        const T dot = acc[j];
        if (dot == T(0) || pb.skip(row, j)) continue;
        const T score = pb.scorer.score(dot, xn, xinv, j);
        if (score < threshold) continue;
        heap.push(score, j);
        threshold = heap.threshold();
    }
    const int64_t k = pb.args.k;
    pb.args.out_counts[local] =
        heap.drain_sorted(pb.args.out_scores + local * k, pb.args.out_indices + local * k);
}

// Up to `lanes` rows at once through a dense feature x lane tile.
template <class T, class I>
void vector_group(const Problem<T, I>& pb, Scratch<T, I>& s, const int64_t* rows, int n_rows) {
    using V = vec64_t<T>;
    constexpr int lanes = Vec64<T>::lanes;
    const auto& x = pb.args.x;
    const auto& yt = pb.args.yt;
    uint64_t* bits = s.features.data();
    V* tile_rows = reinterpret_cast<V*>(s.tile_rows.data());
    V* tile_acc = reinterpret_cast<V*>(s.tile_acc.data());

    // Spread the group's rows into tile_rows[f][lane]; the feature bits are
    // already set by the caller, so zero every used tile row first.
    const int64_t n_words = (x.n_cols + 63) / 64;
    const V zero = V{};
    for (int64_t w = 0; w < n_words; ++w)
        for (uint64_t word = bits[w]; word != 0; word &= word - 1)
            tile_rows[w * 64 + __builtin_ctzll(word)] = zero;
    for (int lane = 0; lane < n_rows; ++lane)
        for (int64_t p = x.indptr[rows[lane]]; p < x.indptr[rows[lane] + 1]; ++p)
            tile_rows[x.indices[p]][lane] = x.data[p];

    // Accumulate every column touched by any feature of the group, features in
    // ascending order (the same order the scalar path uses for each row).
    const int32_t stamp = s.next_stamp();
    int32_t* mark = s.stamp.data();
    I* touched = s.touched.data();
    int64_t n_touched = 0;
    for (int64_t w = 0; w < n_words; ++w) {
        uint64_t word = bits[w];
        if (word == 0) continue;
        bits[w] = 0;
        for (; word != 0; word &= word - 1) {
            const int64_t f = w * 64 + __builtin_ctzll(word);
            const V xv = tile_rows[f];
            for (int64_t q = yt.indptr[f]; q < yt.indptr[f + 1]; ++q) {
                const I j = yt.indices[q];
                const V prod = xv * yt.data[q];
                if (mark[j] != stamp) {
                    mark[j] = stamp;
                    tile_acc[j] = prod;
                    touched[n_touched++] = j;
                } else {
                    tile_acc[j] += prod;
                }
            }
        }
    }

    // Select per lane.  A lane's candidate is only pushed when it reaches that
    // lane's current threshold, which rejects most candidates in a compare.
    TopK<T, I> heaps[lanes];
    V xn = zero, xinv = zero, threshold = zero;
    int64_t self_col[lanes];
    for (int lane = 0; lane < lanes; ++lane) {
        threshold[lane] = std::numeric_limits<T>::infinity();  // unused lanes never accept
        self_col[lane] = -1;
    }
    for (int lane = 0; lane < n_rows; ++lane) {
        const int64_t local = rows[lane] - pb.args.row_begin;
        heaps[lane] = TopK<T, I>(s.heap_scores.data() + lane * pb.k,
                                 s.heap_indices.data() + lane * pb.k, pb.k);
        xn[lane] = pb.x_norm[local];
        xinv[lane] = pb.x_inv_norm[local];
        threshold[lane] = heaps[lane].threshold();
        if (pb.args.same_matrix && pb.args.exclude_self) self_col[lane] = rows[lane];
    }
    for (int64_t t = 0; t < n_touched; ++t) {
        const I j = touched[t];
        const V dot = tile_acc[j];
        const V score = pb.scorer.score(dot, xn, xinv, j);
        const auto accept = (score >= threshold) & (dot != zero);
        for (int lane = 0; lane < n_rows; ++lane) {
            if (!accept[lane] || self_col[lane] == j) continue;
            heaps[lane].push(score[lane], j);
            threshold[lane] = heaps[lane].threshold();
        }
    }
    const int64_t k = pb.args.k;
    for (int lane = 0; lane < n_rows; ++lane) {
        const int64_t local = rows[lane] - pb.args.row_begin;
        pb.args.out_counts[local] = heaps[lane].drain_sorted(pb.args.out_scores + local * k,
                                                             pb.args.out_indices + local * k);
    }
}

// Chooses the path for one group of rows and runs it.
template <class T, class I>
void run_group(const Problem<T, I>& pb, Scratch<T, I>& s, const int64_t* rows, int n_rows,
               const int64_t* row_cost) {
    const auto& x = pb.args.x;
    if (n_rows > 1) {
        // Union of the group's features and what a vector pass over it costs.
        uint64_t* bits = s.features.data();
        int64_t scalar_work = 0, vector_work = 0;
        for (int lane = 0; lane < n_rows; ++lane) {
            scalar_work += row_cost[lane];
            for (int64_t p = x.indptr[rows[lane]]; p < x.indptr[rows[lane] + 1]; ++p) {
                const int64_t f = x.indices[p];
                const uint64_t bit = uint64_t(1) << (f & 63);
                if (!(bits[f >> 6] & bit)) {
                    bits[f >> 6] |= bit;
                    vector_work += pb.row_work[f];
                }
            }
        }
        if (static_cast<double>(vector_work) <= kVectorWorkRatio * static_cast<double>(scalar_work)) {
            s.ensure_tiles(pb.args.yt.n_cols, x.n_cols);
            vector_group(pb, s, rows, n_rows);  // clears the bits
            return;
        }
        for (int lane = 0; lane < n_rows; ++lane)
            for (int64_t p = x.indptr[rows[lane]]; p < x.indptr[rows[lane] + 1]; ++p)
                bits[x.indices[p] >> 6] = 0;
    }
    for (int lane = 0; lane < n_rows; ++lane) scalar_row(pb, s, rows[lane]);
}

}  // namespace cosine_detail

template <class T, class I>
void cosine_topk(const CosineTopkArgs<T, I>& args) {
    using namespace cosine_detail;
    constexpr int lanes = Vec64<T>::lanes;
    const auto& x = args.x;
    const auto& yt = args.yt;
    const int64_t m = yt.n_cols, d = yt.n_rows;
    const int64_t n_rows = args.row_end - args.row_begin;
    if (n_rows <= 0) return;

    // Norms of the candidates, and of the requested rows (shared when Y is X so
    // that sim(i, j) and sim(j, i) are computed from the very same numbers).
    const std::vector<double> y_norm64 = candidate_norms(yt);
    std::vector<T> y_norm(m), y_inv(m), x_norm(n_rows), x_inv(n_rows);
    for (int64_t j = 0; j < m; ++j) {
        y_norm[j] = static_cast<T>(y_norm64[j]);
        y_inv[j] = y_norm64[j] > 0 ? static_cast<T>(1.0 / y_norm64[j]) : T(0);
    }
    for (int64_t r = 0; r < n_rows; ++r) {
        const int64_t row = args.row_begin + r;
        const double norm = args.same_matrix ? y_norm64[row] : row_norm(x, row);
        x_norm[r] = static_cast<T>(norm);
        x_inv[r] = norm > 0 ? static_cast<T>(1.0 / norm) : T(0);
    }

    // Cost of a scalar pass over each feature, and of each row; rows are then
    // grouped most expensive first so that groups of popular rows share
    // features and the dynamic schedule starts with the longest tasks.
    std::vector<int64_t> feature_work(d);
    for (int64_t f = 0; f < d; ++f) feature_work[f] = yt.row_nnz(f);
    std::vector<int64_t> order(n_rows), cost(n_rows);
    for (int64_t r = 0; r < n_rows; ++r) {
        const int64_t row = args.row_begin + r;
        int64_t work = 0;
        for (int64_t p = x.indptr[row]; p < x.indptr[row + 1]; ++p) work += feature_work[x.indices[p]];
        cost[r] = work;
        order[r] = row;
    }
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return cost[a - args.row_begin] > cost[b - args.row_begin];
    });
    std::vector<int64_t> ordered_cost(n_rows);
    for (int64_t r = 0; r < n_rows; ++r) ordered_cost[r] = cost[order[r] - args.row_begin];

    Problem<T, I> pb{args, feature_work.data(), Scorer<T>{y_norm.data(), y_inv.data(), static_cast<T>(args.shrink)},
                     x_norm.data(), x_inv.data(), std::min<int64_t>(args.k, m)};
    const int64_t n_groups = (n_rows + lanes - 1) / lanes;
    bool failed = false;

#pragma omp parallel num_threads(args.n_threads)
    {
        std::unique_ptr<Scratch<T, I>> scratch;
        try {
            scratch.reset(new Scratch<T, I>(m, d, std::max<int64_t>(pb.k, 1)));
        } catch (const std::bad_alloc&) {
#pragma omp atomic write
            failed = true;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t g = 0; g < n_groups; ++g) {
            if (!scratch) continue;
            const int64_t first = g * lanes;
            const int count = static_cast<int>(std::min<int64_t>(lanes, n_rows - first));
            try {
                run_group(pb, *scratch, order.data() + first, count, ordered_cost.data() + first);
            } catch (const std::bad_alloc&) {
#pragma omp atomic write
                failed = true;
                scratch.reset();
            }
        }
    }
    if (failed) throw std::bad_alloc();
}

}  // namespace FASTREC_ISA_NS
}  // namespace fastrec
#endif  // FASTREC_ISA_NS
