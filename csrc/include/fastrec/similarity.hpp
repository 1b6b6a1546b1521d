// Sparse cosine similarity with top-k neighbours per row.
//
//   sim(i, j) = <x_i, y_j> / (||x_i|| * ||y_j|| + shrink)
//
// The same kernel scores two other measures of the dot products (`measure`):
//
//   dot       sim(i, j) = <x_i, y_j>
//   Jaccard   sim(i, j) = <x_i, y_j> / (|x_i|^2 + |y_j|^2 - <x_i, y_j> + shrink)
//             with binary rows: |A n B| / (|A u B| + shrink)
//
// Centred (Pearson, adjusted cosine) and weighted (BM25, TF-IDF) similarities
// are these measures of rows the caller transformed first.
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
// path would.
//
// When Y is X and every row is requested, the product is symmetric: each pair
// is computed once (rows are relabelled by processing rank and row r only
// accumulates candidates of rank >= r) and its score is offered to both rows'
// heaps, which halves the work.  Heaps that other threads may update are
// guarded by per-row spin locks.
//
// Every dot product sums its terms in ascending feature order whichever path,
// mode or thread computes it, each term as `acc += x * y` (so the compiler
// contracts it to one FMA in both paths or in neither), every score is formed
// by one function from the same operands, and the kept set is the top of a
// total order (score, then smaller index): results are identical for any
// thread count and for any `rows=` block.
//
// Scores are clamped to [-1, 1], and a score of exactly 0 is never a candidate.
//
// Range: the caller keeps every product, sum and norm of the kernel inside the
// normal range of T, if need be by passing rows rescaled by powers of two (a
// row's cosines do not change) together with each row's exponent, so that the
// shrink term of pair (i, j) is ldexp(shrink, -(x_exp[i] + y_exp[j])).
#pragma once

#include "fastrec/prelude.hpp"

namespace fastrec {

// The measures of CosineTopkArgs::measure.
constexpr int32_t kCosine = 0, kDot = 1, kJaccard = 2;

// Inputs and outputs of one call; every array is owned by the caller.
template <class T, class I>
struct CosineTopkArgs {
    CsrView<T, I> x;      // IN  n x d, the rows to compare (sorted, unique indices)
    CsrView<T, I> yt;     // IN  d x m, the transpose of the candidate rows Y
    int64_t row_begin;    // IN  first row of x to compute
    int64_t row_end;      // IN  one past the last row of x to compute
    int64_t k;            // IN  neighbours kept per row (>= 1)
    double shrink;        // IN  added to the norm product (>= 0)
    int32_t measure;      // IN  kCosine, kDot or kJaccard
    const int32_t* x_exp; // IN  (n) x's rows were scaled by 2^-x_exp, or nullptr (not scaled)
    const int32_t* y_exp; // IN  (m) Y's rows were scaled by 2^-y_exp; nullptr with x_exp
    bool same_matrix;     // IN  Y is X: row i of X is column i of the result
    bool exclude_self;    // IN  with same_matrix, never return j == i
    I* out_indices;       // OUT (row_end - row_begin) x k, best first
    T* out_scores;        // OUT (row_end - row_begin) x k
    int64_t* out_counts;  // OUT (row_end - row_begin) entries kept per row
    int n_threads;        // IN  OpenMP threads (>= 1)
};

// The Python-visible arguments of cosine_topk, in call order, with their checks
// (the notation is described in csrc/bindings/fields.hpp).  x.n_cols is yt.n_rows.
#define FASTREC_COSINE_TOPK_FIELDS(F, A)                                       \
    F(x_indptr, int64_t, IN, A.x.indptr, (bind_indptr(A.x.n_rows)))            \
    F(x_indices, I, IN, A.x.indices, (nnz(A.x)))                               \
    F(x_data, T, IN, A.x.data, (nnz(A.x)))                                     \
    F(yt_indptr, int64_t, IN, A.yt.indptr, (bind_indptr(A.yt.n_rows)))         \
    F(yt_indices, I, IN, A.yt.indices, (nnz(A.yt)))                            \
    F(yt_data, T, IN, A.yt.data, (nnz(A.yt)))                                  \
    F(n_candidates, int64_t, VALUE, A.yt.n_cols, (at_least(0)))                \
    F(row_begin, int64_t, VALUE, A.row_begin, (in_range(0, A.x.n_rows)))       \
    F(row_end, int64_t, VALUE, A.row_end, (in_range(A.row_begin, A.x.n_rows))) \
    F(k, int64_t, VALUE, A.k, (at_least(1)))                                   \
    F(shrink, double, VALUE, A.shrink, (finite_at_least(0)))                   \
    F(measure, int32_t, VALUE, A.measure, (in_range(0, 2)))                    \
    F(x_exp, int32_t, IN, A.x_exp, (optional(A.x.n_rows)))                     \
    F(y_exp, int32_t, IN, A.y_exp, (optional(A.yt.n_cols)))                    \
    F(same_matrix, bool, VALUE, A.same_matrix, ())                             \
    F(exclude_self, bool, VALUE, A.exclude_self, ())                           \
    F(out_indices, I, OUT, A.out_indices, (A.row_end - A.row_begin, A.k))      \
    F(out_scores, T, OUT, A.out_scores, (A.row_end - A.row_begin, A.k))        \
    F(out_counts, int64_t, OUT, A.out_counts, (A.row_end - A.row_begin))       \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))

}  // namespace fastrec

FASTREC_DECLARE_FOR_EACH_ISA(template <class T, class I> void cosine_topk(const CosineTopkArgs<T, I>& args);)

#ifdef FASTREC_ISA_NS
#include "fastrec/simd.hpp"
#include "fastrec/topk.hpp"

namespace fastrec {
namespace FASTREC_ISA_NS {
namespace cosine_detail {

// A group takes the vector path when its union of features (plus one pass over
// the labels) costs at most this fraction of the scalar path's per-row work.
// A vector update moves a cache line where a scalar update moves one element,
// but it has no branch and no touched-list bookkeeping; measured on 10M
// power-law ratings (2 threads), 1.0 beat 0.5 by 15% and 0.35 by 35%.
constexpr double kVectorWorkRatio = 1.0;

// Euclidean norm of every row of Y, read from its transpose (features ascending,
// the order row_norm sums in).
template <class T, class I>
std::vector<double> candidate_norms(const CsrView<T, I>& yt, bool squared) {
    std::vector<double> sq(static_cast<std::size_t>(yt.n_cols), 0.0);
    for (int64_t f = 0; f < yt.n_rows; ++f)
        for (int64_t p = yt.indptr[f]; p < yt.indptr[f + 1]; ++p) {
            double v = static_cast<double>(yt.data[p]);
            sq[static_cast<std::size_t>(yt.indices[p])] += v * v;
        }
    if (!squared)
        for (double& s : sq) s = std::sqrt(s);
    return sq;
}

template <class T, class I>
double row_norm(const CsrView<T, I>& x, int64_t row, bool squared) {
    double sq = 0.0;
    for (int64_t p = x.indptr[row]; p < x.indptr[row + 1]; ++p) {
        double v = static_cast<double>(x.data[p]);
        sq += v * v;
    }
    return squared ? sq : std::sqrt(sq);
}

// Turns dot products into similarities clamped to [-1, 1] (rounding can
// overshoot by an ulp).  With shrink == 0 it multiplies by inverse norms;
// otherwise it divides by (|x||y| + shrink).  Both forms are symmetric in x and
// y, so sim(i, j) and sim(j, i) round identically, and the vector form does
// lane by lane exactly what the scalar form does.
template <class T>
struct Scorer {
    const T* y_norm;        // (m) ||y||, by candidate label
    const T* y_inv_norm;    // (m) 1 / ||y||, 0 for empty rows
    const int32_t* y_exp;   // (m) scale exponent by label, or nullptr: rows not rescaled
    double shrink;          // >= 0
    int32_t measure;        // kCosine, kDot, kJaccard (norms are then squared norms)

    // The shrink term of a pair in the rows' rescaled units (an exact power-of-two
    // scaling of shrink, rounded once to T).
    T shrink_term(int32_t x_exp, int64_t label) const {
        if (y_exp == nullptr) return static_cast<T>(shrink);
        return static_cast<T>(std::ldexp(shrink, -(x_exp + y_exp[label])));
    }
    static T clamp(T s) { return s > T(1) ? T(1) : (s < T(-1) ? T(-1) : s); }

    T score(T dot, T x_norm, T x_inv_norm, int32_t x_exp, int64_t label) const {
        if (measure != kCosine) {  // one predictable branch: cosine's path is unchanged
            if (measure == kDot) return dot;
            return clamp(dot / (x_norm + y_norm[label] - dot + static_cast<T>(shrink)));
        }
        if (shrink == 0) return clamp(dot * (x_inv_norm * y_inv_norm[label]));
        const T term = shrink_term(x_exp, label);
        return clamp(dot / (x_norm * y_norm[label] + term));
    }
    vec64_t<T> score(vec64_t<T> dot, vec64_t<T> x_norm, vec64_t<T> x_inv_norm, const int32_t* lane_exp,
                     int64_t label) const {
        using V = vec64_t<T>;
        const V one = broadcast64(T(1));
        V s;
        if (measure == kDot) return dot;
        if (measure == kJaccard) {
            s = dot / (x_norm + y_norm[label] - dot + static_cast<T>(shrink));
        } else if (shrink == 0) {
            s = dot * (x_inv_norm * y_inv_norm[label]);
        } else {
            V term;
            for (int lane = 0; lane < Vec64<T>::lanes; ++lane) term[lane] = shrink_term(lane_exp[lane], label);
            s = dot / (x_norm * y_norm[label] + term);
        }
        s = s > one ? one : s;
        return s < -one ? -one : s;
    }
};

// The per-row heaps of the symmetric mode, stored in the output arrays and
// shared by all threads: a spin lock and a published threshold per row.
template <class T, class I>
struct SharedHeaps {
    T* scores;        // (n x stride)
    I* indices;       // (n x stride)
    int64_t* sizes;   // (n)
    int64_t stride;   // row stride of the output arrays
    int64_t capacity; // entries kept per row
    std::vector<int32_t> locks;
    std::vector<T> thresholds;  // root score of a full heap, else -inf

    SharedHeaps(T* s, I* i, int64_t* z, int64_t n, int64_t str, int64_t cap)
        : scores(s), indices(i), sizes(z), stride(str), capacity(cap), locks(n, 0),
          thresholds(n, -std::numeric_limits<T>::infinity()) {
        std::fill(sizes, sizes + n, int64_t(0));
    }

    // A stale (lower) threshold only costs an unneeded lock; it never drops a
    // candidate, because thresholds only rise and push() re-checks under the lock.
    T threshold(int64_t row) const {
        T value;
        __atomic_load(&thresholds[row], &value, __ATOMIC_RELAXED);
        return value;
    }
    void lock(int64_t row) {
        while (__atomic_exchange_n(&locks[row], 1, __ATOMIC_ACQUIRE))
            while (__atomic_load_n(&locks[row], __ATOMIC_RELAXED)) {
            }
    }
    void unlock(int64_t row) { __atomic_store_n(&locks[row], 0, __ATOMIC_RELEASE); }

    // Caller holds the lock of `row`.
    void push_locked(int64_t row, T score, I index) {
        TopK<T, I> heap(scores + row * stride, indices + row * stride, capacity, sizes[row]);
        heap.push(score, index);
        sizes[row] = heap.size();
        const T value = heap.threshold();
        __atomic_store(&thresholds[row], &value, __ATOMIC_RELAXED);
    }
    void offer(int64_t row, T score, I index) {
        if (score < threshold(row)) return;
        lock(row);
        push_locked(row, score, index);
        unlock(row);
    }
};

// Per-thread scratch, sized once per call.
template <class T, class I>
struct Scratch {
    static constexpr int lanes = Vec64<T>::lanes;

    AlignedBuffer<int32_t> stamp;         // (m) id of the last row that touched label t
    AlignedBuffer<I> touched;             // (m) labels touched by the current row
    AlignedBuffer<T> acc;                 // (m) scalar path: dot products
    AlignedBuffer<T> tile_acc;            // (m x lanes) vector path: dot products, lazily
    AlignedBuffer<T> tile_rows;           // (d x lanes) vector path: the group's rows, lazily
    AlignedBuffer<I> union_features;      // (d) vector path: the group's features, lazily
    AlignedBuffer<int64_t> union_cursor;  // (d) vector path: where each feature's candidates start
    AlignedBuffer<int64_t> feature_cursor;  // (d) symmetric mode: see Problem::first_candidate
    AlignedBuffer<uint64_t> feature_bits; // (d / 64) the group's features as a bit set
    AlignedBuffer<T> heap_scores;         // (lanes x k)
    AlignedBuffer<I> heap_indices;        // (lanes x k)
    int32_t current = 0;

    Scratch(int64_t m, int64_t d, int64_t k)
        : stamp(m), touched(m), acc(m), feature_cursor(d), feature_bits((d + 63) / 64),
          heap_scores(lanes * k), heap_indices(lanes * k) {
        stamp.zero();
        feature_bits.zero();
        std::fill(feature_cursor.data(), feature_cursor.data() + d, int64_t(-1));
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
            union_features.allocate(static_cast<std::size_t>(d));
            union_cursor.allocate(static_cast<std::size_t>(d));
        }
    }
};

// Everything a row or group computation reads.  Candidates are addressed by a
// "label": the column index itself, or in symmetric mode the processing rank of
// the candidate row (label_col maps it back to the column).
template <class T, class I>
struct Problem {
    const CosineTopkArgs<T, I>& args;
    CsrView<T, I> cand;               // d x m, Y^T with columns relabelled, rows sorted by label
    const int64_t* label_col;         // (m) column of each label, or nullptr for identity
    const int64_t* feature_work;      // (d) nnz of each row of Y^T
    Scorer<T> scorer;                 // by label
    SharedHeaps<T, I>* shared;        // symmetric mode only, else nullptr
    int64_t k;                        // entries kept per row: min(args.k, m)

    bool symmetric() const { return shared != nullptr; }
    int32_t row_exp(int64_t row) const { return args.x_exp ? args.x_exp[row] : 0; }
    int64_t column(int64_t label) const { return label_col ? label_col[label] : label; }
    // First position of cand row f whose label is >= first_label.  Branch-free
    // binary search: log2(length) steps whatever the data.
    int64_t search_candidate(int64_t f, int64_t first_label) const {
        int64_t base = cand.indptr[f];
        int64_t length = cand.indptr[f + 1] - base;
        if (first_label <= 0 || length == 0) return base;
        const I target = static_cast<I>(first_label);
        while (length > 1) {
            const int64_t half = length / 2;
            base = cand.indices[base + half - 1] < target ? base + half : base;
            length -= half;
        }
        return base + (cand.indices[base] < target ? 1 : 0);
    }

    // The same position, found from where this thread's previous search on row f
    // ended (cursor[f], -1 when none).  Each thread sees its groups in rising
    // label order, so the cursor usually moves forward by a few entries: one
    // cache line instead of a binary search's chain of misses into Y^T.
    int64_t first_candidate(int64_t f, int64_t first_label, int64_t* cursor) const {
        if (first_label <= 0) return cand.indptr[f];
        const int64_t begin = cand.indptr[f], end = cand.indptr[f + 1];
        int64_t pos = cursor[f];
        const I target = static_cast<I>(first_label);
        if (pos < begin || (pos > begin && cand.indices[pos - 1] >= target)) {
            pos = search_candidate(f, first_label);  // first visit, or moving back
        } else {
            int64_t steps = 0;
            while (pos < end && cand.indices[pos] < target && ++steps <= 16) ++pos;
            if (steps > 16) pos = search_candidate(f, first_label);  // a long way ahead
        }
        cursor[f] = pos;
        return pos;
    }
};

// Where one computed row's local heap goes: straight to the output
// (asymmetric) or merged into the shared heap of that row (symmetric).
template <class T, class I>
void finish_row(const Problem<T, I>& pb, TopK<T, I>& heap, int64_t row) {
    if (pb.symmetric()) {
        const int64_t n = heap.size();
        const T* scores = heap.scores();
        const I* indices = heap.indices();
        pb.shared->lock(row);
        for (int64_t e = 0; e < n; ++e) pb.shared->push_locked(row, scores[e], indices[e]);
        pb.shared->unlock(row);
        return;
    }
    const int64_t local = row - pb.args.row_begin;
    const int64_t k = pb.args.k;
    pb.args.out_counts[local] =
        heap.drain_sorted(pb.args.out_scores + local * k, pb.args.out_indices + local * k);
}

// One row, scalar accumulation.  `row` is the row of X; `label` its own label
// in symmetric mode (only candidates with label >= it are computed), else -1.
template <class T, class I>
void scalar_row(const Problem<T, I>& pb, Scratch<T, I>& s, int64_t row, int64_t label, T xn, T xinv) {
    const auto& x = pb.args.x;
    const auto& cand = pb.cand;
    const int32_t stamp = s.next_stamp();
    int32_t* mark = s.stamp.data();
    T* acc = s.acc.data();
    I* touched = s.touched.data();
    int64_t n_touched = 0;

    for (int64_t p = x.indptr[row]; p < x.indptr[row + 1]; ++p) {
        const I f = x.indices[p];
        const T xv = x.data[p];
        const int64_t first = pb.first_candidate(f, label, s.feature_cursor.data());
        for (int64_t q = first, end = cand.indptr[f + 1]; q < end; ++q) {
            const I t = cand.indices[q];
            if (mark[t] != stamp) {
                mark[t] = stamp;
                acc[t] = T(0);
                touched[n_touched++] = t;
            }
            acc[t] += xv * cand.data[q];  // the vector path's expression: both contract alike
        }
    }

    TopK<T, I> heap(s.heap_scores.data(), s.heap_indices.data(), pb.k);
    const bool exclude_self = pb.args.same_matrix && pb.args.exclude_self;
    const int32_t xexp = pb.row_exp(row);
    T threshold = heap.threshold();
    for (int64_t e = 0; e < n_touched; ++e) {
        const I t = touched[e];
        const T dot = acc[t];
        if (dot == T(0)) continue;
        const int64_t col = pb.column(t);
        const bool self = pb.args.same_matrix && col == row;
        if (self && exclude_self) continue;
        const T score = pb.scorer.score(dot, xn, xinv, xexp, t);
        if (score == T(0)) continue;  // underflowed: zero scores are not kept
        if (pb.symmetric() && !self) pb.shared->offer(col, score, static_cast<I>(row));
        if (score < threshold) continue;
        heap.push(score, static_cast<I>(col));
        threshold = heap.threshold();
    }
    finish_row(pb, heap, row);
}

// Up to `lanes` rows at once through a dense feature x lane tile.
//
// The group's rows are spread into tile_rows[f][lane]; every candidate y_ft of
// the group's features then adds y_ft * tile_rows[f] to tile_acc[t] with one
// vector FMA and no branch.  Selection then scans the labels directly, so no
// touched list is needed: the vector path is only chosen when the group touches
// most labels anyway.  `first_label` is the label of rows[0] in symmetric mode
// (the group holds consecutive labels), else -1.
template <class T, class I>
void vector_group(const Problem<T, I>& pb, Scratch<T, I>& s, const int64_t* rows, int n_rows,
                  int64_t first_label, const T* lane_norm, const T* lane_inv_norm) {
    using V = vec64_t<T>;
    constexpr int lanes = Vec64<T>::lanes;
    const auto& x = pb.args.x;
    const auto& cand = pb.cand;
    const int64_t m = cand.n_cols;
    const int64_t label_begin = pb.symmetric() ? first_label : 0;
    uint64_t* bits = s.feature_bits.data();
    V* tile_rows = reinterpret_cast<V*>(s.tile_rows.data());
    V* tile_acc = reinterpret_cast<V*>(s.tile_acc.data());
    const V zero = V{};

    // The union of the group's features, ascending (bits set by the caller).
    int64_t n_union = 0;
    I* feature_list = s.union_features.data();
    int64_t* cursor = s.union_cursor.data();
    const int64_t n_words = (x.n_cols + 63) / 64;
    for (int64_t w = 0; w < n_words; ++w) {
        for (uint64_t word = bits[w]; word != 0; word &= word - 1) {
            const int64_t f = w * 64 + __builtin_ctzll(word);
            feature_list[n_union] = static_cast<I>(f);
            cursor[n_union++] = pb.first_candidate(f, label_begin, s.feature_cursor.data());
            tile_rows[f] = zero;
        }
        bits[w] = 0;
    }
    for (int lane = 0; lane < n_rows; ++lane)
        for (int64_t p = x.indptr[rows[lane]]; p < x.indptr[rows[lane] + 1]; ++p)
            tile_rows[x.indices[p]][lane] = x.data[p];

    // Accumulate, features in ascending order (each row's order in the scalar path).
    for (int64_t t = label_begin; t < m; ++t) tile_acc[t] = zero;
    for (int64_t u = 0; u < n_union; ++u) {
        const V xv = tile_rows[feature_list[u]];
        const I* idx = cand.indices;
        const T* val = cand.data;
        for (int64_t q = cursor[u], end = cand.indptr[feature_list[u] + 1]; q < end; ++q)
            tile_acc[idx[q]] += xv * val[q];
    }

    // Select.  A lane's candidate is only pushed when it reaches that lane's
    // current threshold, which rejects most candidates in one vector compare.
    TopK<T, I> heaps[lanes];
    V xn = broadcast64(T(1)), xinv = zero, threshold = zero;  // unused lanes score 0, as empty rows
    int32_t xexp[lanes] = {};
    for (int lane = 0; lane < lanes; ++lane) threshold[lane] = std::numeric_limits<T>::infinity();
    for (int lane = 0; lane < n_rows; ++lane) {
        heaps[lane] = TopK<T, I>(s.heap_scores.data() + lane * pb.k, s.heap_indices.data() + lane * pb.k, pb.k);
        xn[lane] = lane_norm[lane];
        xinv[lane] = lane_inv_norm[lane];
        xexp[lane] = pb.row_exp(rows[lane]);
        threshold[lane] = heaps[lane].threshold();
    }
    const bool exclude_self = pb.args.same_matrix && pb.args.exclude_self;
    // Labels where some lane needs care: the group's own rows (symmetric mode:
    // lower triangle, diagonal, pairs inside the group) or their columns.
    for (int64_t t = label_begin; t < m; ++t) {
        const V score = pb.scorer.score(tile_acc[t], xn, xinv, xexp, t);
        const int64_t col = pb.column(t);
        const bool inside_group = pb.symmetric() && t < label_begin + n_rows;
        const auto nonzero = score != zero;  // zero dot products and underflowed scores
        if (pb.symmetric() && !inside_group) {
            // Offer to column col's shared heap: one threshold read for all lanes.
            const T col_threshold = pb.shared->threshold(col);
            const auto to_col = (score >= col_threshold) & nonzero;
            bool any_col = false;
            for (int lane = 0; lane < lanes; ++lane) any_col |= to_col[lane] != 0;
            if (any_col) {
                pb.shared->lock(col);
                for (int lane = 0; lane < n_rows; ++lane)
                    if (to_col[lane]) pb.shared->push_locked(col, score[lane], static_cast<I>(rows[lane]));
                pb.shared->unlock(col);
            }
        }
        const auto accept = (score >= threshold) & nonzero;
        bool any = inside_group;
        for (int lane = 0; lane < lanes; ++lane) any |= accept[lane] != 0;
        if (!any) continue;
        for (int lane = 0; lane < n_rows; ++lane) {
            if (!nonzero[lane]) continue;
            const bool self = pb.args.same_matrix && col == rows[lane];
            if (self && exclude_self) continue;
            if (inside_group) {
                const int64_t lane_label = label_begin + lane;
                if (t < lane_label) continue;  // lower triangle: computed by lane t - label_begin
                if (t > lane_label) {          // pair inside the group: also offer to that lane
                    TopK<T, I>& other = heaps[t - label_begin];
                    other.push(score[lane], static_cast<I>(rows[lane]));
                    threshold[t - label_begin] = other.threshold();
                }
            }
            if (score[lane] < threshold[lane]) continue;
            heaps[lane].push(score[lane], static_cast<I>(col));
            threshold[lane] = heaps[lane].threshold();
        }
    }
    for (int lane = 0; lane < n_rows; ++lane) finish_row(pb, heaps[lane], rows[lane]);
}

// Chooses the path for one group of rows and runs it.  `labels` are the rows'
// labels in symmetric mode (consecutive), else nullptr.
template <class T, class I>
void run_group(const Problem<T, I>& pb, Scratch<T, I>& s, const int64_t* rows, int n_rows,
               const int64_t* row_cost, int64_t first_label, const T* norms, const T* inv_norms) {
    const auto& x = pb.args.x;
    if (n_rows > 1) {
        // Union of the group's features and what a vector pass over it costs.
        uint64_t* bits = s.feature_bits.data();
        int64_t scalar_work = 0, vector_work = 0;
        for (int lane = 0; lane < n_rows; ++lane) {
            scalar_work += row_cost[lane];
            for (int64_t p = x.indptr[rows[lane]]; p < x.indptr[rows[lane] + 1]; ++p) {
                const int64_t f = x.indices[p];
                const uint64_t bit = uint64_t(1) << (f & 63);
                if (!(bits[f >> 6] & bit)) {
                    bits[f >> 6] |= bit;
                    vector_work += pb.feature_work[f];
                }
            }
        }
        // The vector path also zeroes and scans every label once.
        const double vector_cost = static_cast<double>(vector_work + pb.cand.n_cols);
        if (vector_cost <= kVectorWorkRatio * static_cast<double>(scalar_work)) {
            s.ensure_tiles(pb.cand.n_cols, x.n_cols);
            vector_group(pb, s, rows, n_rows, first_label, norms, inv_norms);  // clears the bits
            return;
        }
        for (int lane = 0; lane < n_rows; ++lane)
            for (int64_t p = x.indptr[rows[lane]]; p < x.indptr[rows[lane] + 1]; ++p)
                bits[x.indices[p] >> 6] = 0;
    }
    for (int lane = 0; lane < n_rows; ++lane)
        scalar_row(pb, s, rows[lane], pb.symmetric() ? first_label + lane : -1, norms[lane], inv_norms[lane]);
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
    const int64_t capacity = std::min<int64_t>(args.k, m);
    // Symmetric mode needs every row: a pair's score is offered to both rows.
    const bool symmetric = args.same_matrix && args.row_begin == 0 && args.row_end == x.n_rows && m > 1;

    // Norms of the candidates, and of the requested rows (taken from the same
    // numbers when Y is X, so that sim(i, j) and sim(j, i) agree bit for bit).
    std::vector<double> y_norm64;
    const bool squared = args.measure == kJaccard;  // Jaccard needs |x|^2, the count of a binary row
    if (args.same_matrix) {  // Y's rows are X's rows: row norms, in parallel
        y_norm64.resize(m);
#pragma omp parallel for num_threads(args.n_threads) schedule(static, 1024)
        for (int64_t i = 0; i < m; ++i) y_norm64[i] = row_norm(x, i, squared);
    } else {
        y_norm64 = candidate_norms(yt, squared);
    }
    std::vector<T> row_norm_t(n_rows), row_inv_t(n_rows);
    for (int64_t r = 0; r < n_rows; ++r) {
        const int64_t row = args.row_begin + r;
        const double norm = args.same_matrix ? y_norm64[row] : row_norm(x, row, squared);
        // An empty row's dot products are all 0; norm 1 makes its scores 0 / (1 * |y| + shrink),
        // never 0 / 0, even where the shrink term rounds to 0.
        row_norm_t[r] = norm > 0 ? static_cast<T>(norm) : T(1);
        row_inv_t[r] = norm > 0 ? static_cast<T>(1.0 / norm) : T(0);
    }

    // Cost of a scalar pass over each feature, and of each row; rows are then
    // grouped most expensive first so that groups of popular rows share
    // features and the dynamic schedule starts with the longest tasks.
    std::vector<int64_t> feature_work(d);
    for (int64_t f = 0; f < d; ++f) feature_work[f] = yt.row_nnz(f);
    std::vector<int64_t> order(n_rows), cost(n_rows);
#pragma omp parallel for num_threads(args.n_threads) schedule(static, 1024)
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
    std::vector<T> ordered_norm(n_rows), ordered_inv(n_rows);
    for (int64_t r = 0; r < n_rows; ++r) {
        const int64_t local = order[r] - args.row_begin;
        ordered_cost[r] = cost[local];
        ordered_norm[r] = row_norm_t[local];
        ordered_inv[r] = row_inv_t[local];
    }

    // Candidate norms by label, and in symmetric mode the relabelled Y^T.
    std::vector<T> label_norm(m), label_inv(m);
    std::vector<int32_t> label_exp(args.y_exp ? m : 0);
    std::vector<I> cand_indices;
    std::vector<T> cand_data;
    CsrView<T, I> cand = yt;
    std::unique_ptr<SharedHeaps<T, I>> shared;
    for (int64_t t = 0; t < m; ++t) {
        const double norm = y_norm64[symmetric ? order[t] : t];
        label_norm[t] = norm > 0 ? static_cast<T>(norm) : T(1);  // as row_norm_t
        label_inv[t] = norm > 0 ? static_cast<T>(1.0 / norm) : T(0);
        if (args.y_exp) label_exp[t] = args.y_exp[symmetric ? order[t] : t];
    }
    if (symmetric) {
        // Y^T with each column relabelled by its rank in `order`, each row then
        // sorted by label.  (Transposing X's rows in rank order gives the same
        // matrix, but scatters into one stream per feature, which is slower.)
        const int64_t nnz = yt.indptr[yt.n_rows];
        std::vector<I> rank(m);
        for (int64_t t = 0; t < m; ++t) rank[order[t]] = static_cast<I>(t);
        cand_indices.resize(nnz);
        cand_data.resize(nnz);
#pragma omp parallel num_threads(args.n_threads)
        {
            std::vector<std::pair<I, T>> row;
#pragma omp for schedule(dynamic, 256)
            for (int64_t f = 0; f < d; ++f) {
                row.clear();
                for (int64_t q = yt.indptr[f]; q < yt.indptr[f + 1]; ++q)
                    row.emplace_back(rank[yt.indices[q]], yt.data[q]);
                std::sort(row.begin(), row.end(),
                          [](const std::pair<I, T>& a, const std::pair<I, T>& b) { return a.first < b.first; });
                int64_t q = yt.indptr[f];
                for (const auto& [label, value] : row) {
                    cand_indices[q] = label;
                    cand_data[q++] = value;
                }
            }
        }
        cand.indices = cand_indices.data();
        cand.data = cand_data.data();
        shared.reset(new SharedHeaps<T, I>(args.out_scores, args.out_indices, args.out_counts, m, args.k, capacity));
    }
    Problem<T, I> pb{args, cand, symmetric ? order.data() : nullptr, feature_work.data(),
                     Scorer<T>{label_norm.data(), label_inv.data(), args.y_exp ? label_exp.data() : nullptr,
                               args.shrink, args.measure},
                     shared.get(), capacity};

    const int64_t n_groups = (n_rows + lanes - 1) / lanes;
    bool failed = false;
#pragma omp parallel num_threads(args.n_threads)
    {
        std::unique_ptr<Scratch<T, I>> scratch =
            thread_scratch<Scratch<T, I>>(failed, m, d, std::max<int64_t>(capacity, 1));
#pragma omp for schedule(dynamic, 1)
        for (int64_t g = 0; g < n_groups; ++g) {
            if (!scratch) continue;
            const int64_t first = g * lanes;
            const int count = static_cast<int>(std::min<int64_t>(lanes, n_rows - first));
            try {
                run_group(pb, *scratch, order.data() + first, count, ordered_cost.data() + first,
                          symmetric ? first : -1, ordered_norm.data() + first, ordered_inv.data() + first);
            } catch (const std::bad_alloc&) {
#pragma omp atomic write
                failed = true;
                scratch.reset();
            }
        }
        // Symmetric mode: every heap is complete once all groups are done; put
        // each row's entries in rank order.
        if (symmetric && scratch) {
#pragma omp for schedule(static)
            for (int64_t row = 0; row < m; ++row) {
                TopK<T, I> heap(args.out_scores + row * args.k, args.out_indices + row * args.k, capacity,
                                args.out_counts[row]);
                T* tmp_scores = scratch->heap_scores.data();
                I* tmp_indices = scratch->heap_indices.data();
                const int64_t count = heap.drain_sorted(tmp_scores, tmp_indices);
                std::copy(tmp_scores, tmp_scores + count, args.out_scores + row * args.k);
                std::copy(tmp_indices, tmp_indices + count, args.out_indices + row * args.k);
            }
        }
    }
    if (failed) throw std::bad_alloc();
}

}  // namespace FASTREC_ISA_NS
}  // namespace fastrec
#endif  // FASTREC_ISA_NS
