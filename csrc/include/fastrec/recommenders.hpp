// Top-n recommendation by a sparse product, and top-n selection of dense score rows.
//
// sparse_score_topn: for every requested row u of a sparse matrix A (n_a x n_mid),
//
//   score(u, j) = sum over the stored entries (u, i) of A of  a_ui * W[i, j]
//
// with W sparse (n_mid x n_items), and keep the n best items.  This one kernel
// serves the neighbourhood recommenders:
//
//   item-item  A = ratings R (users x items),   W = item neighbours S (items x items)
//   user-user  A = user neighbours (users x users), W = ratings R
//   content    A = normalised user profiles (users x features), W = normalised item features^T
//
// Only items reached through at least one stored entry of A and of W are
// candidates (an item no neighbour points to has no score, not a score of 0);
// an optional mask restricts the candidates further, and the items of row u of
// a "seen" CSR can be excluded.  Rows are independent: each thread owns a dense
// accumulator, a state byte per item and a list of the touched items (cleared
// after each row by walking that list), and takes rows by dynamic scheduling
// (activity is power-law).
// Sums are accumulated in double, in the stored order of A's row: the product of
// two float32 values is exact in double, so float32 results do not depend on
// whether the compiler fused the multiply-add.  The output does not depend on the
// thread count.  The scatter into the accumulator is indirect and does not
// vectorise; the work is bounded by memory traffic, not arithmetic.
//
// dense_topn: the n best entries of every row of a dense score block, skipping
// -inf and NaN (how callers mark non-candidates and excluded items).
//
// Both order results by descending score, ties to the smaller item index, and
// pad missing slots with index -1 and score -inf.
#pragma once

#include "fastrec/prelude.hpp"

namespace fastrec {

template <class T, class I>
struct SparseScoreTopnArgs {
    CsrView<T, I> a;             // IN  n_a x n_mid, one row per user (any index order in a row)
    CsrView<T, I> w;             // IN  n_mid x n_items
    const int64_t* seen_indptr;  // IN  (n_a + 1) items excluded for row u: seen_indices[seen_indptr[u]:...]
    const I* seen_indices;       // IN  (nnz_seen)
    bool exclude_seen;           // IN  apply the exclusions
    const uint8_t* allowed;      // IN  (n_items) 1 = candidate, or nullptr for every item
    const int64_t* rows;         // IN  (n_out) row of A (and of seen) per output row; -1 = leave padded
    int64_t n_out;               // IN
    int64_t n;                   // IN  items kept per row (>= 1)
    int64_t* out_indices;        // OUT (n_out x n) item indices, best first, -1 padded
    T* out_scores;               // OUT (n_out x n) scores, -inf padded
    int n_threads;               // IN  OpenMP threads (>= 1)
};

// The Python-visible arguments of sparse_score_topn, in call order, with their checks
// (see csrc/bindings/fields.hpp).  a.n_cols is w.n_rows; indices are checked by the binding.
#define FASTREC_SPARSE_SCORE_TOPN_FIELDS(F, A)                          \
    F(a_indptr, int64_t, IN, A.a.indptr, (bind_indptr(A.a.n_rows)))     \
    F(a_indices, I, IN, A.a.indices, (nnz(A.a)))                        \
    F(a_data, T, IN, A.a.data, (nnz(A.a)))                              \
    F(w_indptr, int64_t, IN, A.w.indptr, (bind_indptr(A.w.n_rows)))     \
    F(w_indices, I, IN, A.w.indices, (nnz(A.w)))                        \
    F(w_data, T, IN, A.w.data, (nnz(A.w)))                              \
    F(n_items, int64_t, VALUE, A.w.n_cols, (at_least(0)))               \
    F(seen_indptr, int64_t, IN, A.seen_indptr, (A.a.n_rows + 1))        \
    F(seen_indices, I, IN, A.seen_indices, (A.seen_indptr[A.a.n_rows])) \
    F(rows, int64_t, IN, A.rows, (bind(A.n_out)))                       \
    F(allowed, uint8_t, IN, A.allowed, (optional(A.w.n_cols)))          \
    F(exclude_seen, bool, VALUE, A.exclude_seen, ())                    \
    F(n, int64_t, VALUE, A.n, (at_least(1)))                            \
    F(out_indices, int64_t, OUT, A.out_indices, (A.n_out, A.n))         \
    F(out_scores, T, OUT, A.out_scores, (A.n_out, A.n))                 \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))

template <class T>
struct DenseTopnArgs {
    const T* scores;        // IN  (n_rows x n_cols) C-contiguous; -inf / NaN = not a candidate
    int64_t n_rows;         // IN
    int64_t n_cols;         // IN
    int64_t n;              // IN  entries kept per row (>= 1)
    int64_t* out_indices;   // OUT (n_rows x n) column indices, best first, -1 padded
    T* out_scores;          // OUT (n_rows x n) -inf padded
    int n_threads;          // IN
};

// The Python-visible arguments of dense_topn (see csrc/bindings/fields.hpp).
#define FASTREC_DENSE_TOPN_FIELDS(F, A)                          \
    F(scores, T, IN, A.scores, (bind(A.n_rows), bind(A.n_cols))) \
    F(n, int64_t, VALUE, A.n, (at_least(1)))                     \
    F(out_indices, int64_t, OUT, A.out_indices, (A.n_rows, A.n)) \
    F(out_scores, T, OUT, A.out_scores, (A.n_rows, A.n))         \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))

}  // namespace fastrec

FASTREC_DECLARE_FOR_EACH_ISA(
    template <class T, class I> void sparse_score_topn(const SparseScoreTopnArgs<T, I>& args);
    template <class T> void dense_topn(const DenseTopnArgs<T>& args);)

#ifdef FASTREC_ISA_NS
#include "fastrec/topk.hpp"

namespace fastrec {
namespace FASTREC_ISA_NS {
namespace neighbourhood_detail {

// Writes the heap best first into one output row and pads the rest.
template <class T, class I>
void drain_row(TopK<T, I>& heap, int64_t n, int64_t* out_indices, T* out_scores) {
    const int64_t count = heap.drain_sorted(out_scores, out_indices);
    for (int64_t s = count; s < n; ++s) {
        out_indices[s] = -1;
        out_scores[s] = -std::numeric_limits<T>::infinity();
    }
}

// Per-thread scratch of sparse_score_topn.  acc and state are all zeros between rows.
template <class T, class I>
struct Scratch {
    AlignedBuffer<double> acc;     // (n_items) running sums of the current row
    AlignedBuffer<uint8_t> state;  // (n_items) 0 untouched, 1 touched, 2 excluded
    AlignedBuffer<I> touched;      // (n_items + 1) items first reached in this row, in order
    AlignedBuffer<T> heap_scores;  // (n)
    AlignedBuffer<I> heap_indices; // (n)

    Scratch(int64_t n_items, int64_t n)
        : acc(n_items), state(n_items), touched(n_items + 1), heap_scores(n), heap_indices(n) {
        acc.zero();
        state.zero();
    }
};

}  // namespace neighbourhood_detail

template <class T, class I>
void sparse_score_topn(const SparseScoreTopnArgs<T, I>& args) {
    const auto& a = args.a;
    const auto& w = args.w;
    const int64_t n_items = w.n_cols;
    const int64_t n = args.n;
    const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(args.n_threads, args.n_out)));
#pragma omp parallel num_threads(threads)
    {
        neighbourhood_detail::Scratch<T, I> scratch(n_items, n);
        double* acc = scratch.acc.data();
        uint8_t* state = scratch.state.data();
        I* touched = scratch.touched.data();
        TopK<T, I> heap(scratch.heap_scores.data(), scratch.heap_indices.data(), n);
#pragma omp for schedule(dynamic, 8)
        for (int64_t r = 0; r < args.n_out; ++r) {
            int64_t* row_indices = args.out_indices + r * n;
            T* row_scores = args.out_scores + r * n;
            const int64_t u = args.rows[r];
            heap.reset();
            if (u < 0) {
                neighbourhood_detail::drain_row(heap, n, row_indices, row_scores);
                continue;
            }
            // Excluded items are marked first, so the accumulation below never
            // lists them as touched.
            const int64_t* seen_begin = args.seen_indptr + u;
            if (args.exclude_seen)
                for (int64_t p = seen_begin[0]; p < seen_begin[1]; ++p) state[args.seen_indices[p]] = 2;
            // Branch-free accumulation: every term is added, and the item is
            // appended to the touched list, which only grows on its first visit.
            int64_t n_touched = 0;
            for (int64_t p = a.indptr[u]; p < a.indptr[u + 1]; ++p) {
                const int64_t mid = a.indices[p];
                const double weight = static_cast<double>(a.data[p]);
                for (int64_t q = w.indptr[mid]; q < w.indptr[mid + 1]; ++q) {
                    const I j = w.indices[q];
                    acc[j] += weight * static_cast<double>(w.data[q]);
                    touched[n_touched] = j;
                    n_touched += state[j] == 0;
                    state[j] |= 1;
                }
            }
            for (int64_t t = 0; t < n_touched; ++t) {
                const I j = touched[t];
                const T score = static_cast<T>(acc[j]);
                acc[j] = 0.0;
                state[j] = 0;
                if (args.allowed != nullptr && !args.allowed[j]) continue;
                if (score != score) continue;  // NaN: no usable score
                if (score < heap.threshold()) continue;
                heap.push(score, j);
            }
            if (args.exclude_seen)  // back to zeros; excluded items may hold partial sums
                for (int64_t p = seen_begin[0]; p < seen_begin[1]; ++p) {
                    acc[args.seen_indices[p]] = 0.0;
                    state[args.seen_indices[p]] = 0;
                }
            neighbourhood_detail::drain_row(heap, n, row_indices, row_scores);
        }
    }
}

template <class T>
void dense_topn(const DenseTopnArgs<T>& args) {
    const int64_t n = args.n;
    const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(args.n_threads, args.n_rows)));
#pragma omp parallel num_threads(threads)
    {
        AlignedBuffer<T> heap_scores(n);
        AlignedBuffer<int64_t> heap_indices(n);
        TopK<T, int64_t> heap(heap_scores.data(), heap_indices.data(), n);
        const T minus_inf = -std::numeric_limits<T>::infinity();
#pragma omp for schedule(dynamic, 16)
        for (int64_t r = 0; r < args.n_rows; ++r) {
            const T* row = args.scores + r * args.n_cols;
            heap.reset();
            for (int64_t j = 0; j < args.n_cols; ++j) {
                const T score = row[j];
                // NaN fails both comparisons; -inf never beats the threshold test
                // while the heap is filling, so it is refused explicitly.
                if (!(score > minus_inf) || score < heap.threshold()) continue;
                heap.push(score, j);
            }
            neighbourhood_detail::drain_row(heap, n, args.out_indices + r * n, args.out_scores + r * n);
        }
    }
}

}  // namespace FASTREC_ISA_NS
}  // namespace fastrec
#endif  // FASTREC_ISA_NS
