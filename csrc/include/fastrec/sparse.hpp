// A read-only view of a CSR matrix held in caller-owned arrays.
#pragma once

#include <cstdint>

namespace fastrec {

template <class T, class I>
struct CsrView {
    const int64_t* indptr = nullptr;  // IN (n_rows + 1)
    const I* indices = nullptr;       // IN (nnz), sorted and unique within a row
    const T* data = nullptr;          // IN (nnz)
    int64_t n_rows = 0;
    int64_t n_cols = 0;

    int64_t row_nnz(int64_t row) const { return indptr[row + 1] - indptr[row]; }
};

// Arguments of the csr_transpose binding, which allocates the transpose.
template <class T, class I>
struct CsrTransposeArgs {
    CsrView<T, I> a;  // IN  the matrix to transpose (canonical CSR)
    int n_threads;    // IN  OpenMP threads (>= 1)
};

// The Python-visible arguments of csr_transpose (see csrc/bindings/fields.hpp).
#define FASTREC_CSR_TRANSPOSE_FIELDS(F, A)                        \
    F(indptr, int64_t, IN, A.a.indptr, (bind_indptr(A.a.n_rows))) \
    F(indices, I, IN, A.a.indices, (nnz(A.a)))                    \
    F(data, T, IN, A.a.data, (nnz(A.a)))                          \
    F(n_cols, int64_t, VALUE, A.a.n_cols, (at_least(0)))          \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))

}  // namespace fastrec

#include <algorithm>
#include <vector>

#include "fastrec/omp_compat.hpp"

namespace fastrec {

// Transpose of the rows order[0], order[1], ... of `a` (all rows in order when
// `order` is null): output row c lists, for every position r whose row has a
// non-zero in column c, the entry (r, a[order[r]][c]), r ascending.  So the
// output is canonical CSR, and with order = identity it is the plain transpose.
//
// Threads take contiguous ranges of positions balanced by nnz, count their
// entries per column, and then scatter into disjoint slots, so the result does
// not depend on the thread count.  Needs n_threads * a.n_cols counters; fewer
// threads are used when that would exceed the matrix itself in size.
template <class T, class I>
void csr_transpose(const CsrView<T, I>& a, const int64_t* order, int64_t n_positions, int64_t* out_indptr,
                   I* out_indices, T* out_data, int n_threads) {
    const int64_t n_cols = a.n_cols;
    auto row_of = [&](int64_t r) { return order ? order[r] : r; };
    std::vector<int64_t> nnz_before(n_positions + 1, 0);
    for (int64_t r = 0; r < n_positions; ++r) nnz_before[r + 1] = nnz_before[r] + a.row_nnz(row_of(r));
    const int64_t nnz = nnz_before[n_positions];
    int64_t threads = std::max<int64_t>(1, std::min<int64_t>(n_threads, 1 + nnz / std::max<int64_t>(n_cols, 1)));
    if (nnz < (int64_t(1) << 16)) threads = 1;  // not worth a parallel region

    // Position ranges with about nnz / threads entries each.
    std::vector<int64_t> split(threads + 1, n_positions);
    split[0] = 0;
    for (int64_t t = 1; t < threads; ++t)
        split[t] = std::lower_bound(nnz_before.begin(), nnz_before.end(), nnz * t / threads) - nnz_before.begin();
    for (int64_t t = 1; t <= threads; ++t) split[t] = std::max(split[t], split[t - 1]);

    std::vector<int64_t> counts(static_cast<std::size_t>(threads * n_cols), 0);
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int64_t t = 0; t < threads; ++t) {
        int64_t* mine = counts.data() + t * n_cols;
        for (int64_t r = split[t]; r < split[t + 1]; ++r) {
            const int64_t row = row_of(r);
            for (int64_t p = a.indptr[row]; p < a.indptr[row + 1]; ++p) ++mine[a.indices[p]];
        }
    }
    // Column totals give the output indptr; each thread's counters become its
    // first slot in every column.
    out_indptr[0] = 0;
    for (int64_t c = 0; c < n_cols; ++c) {
        int64_t slot = out_indptr[c];
        for (int64_t t = 0; t < threads; ++t) {
            const int64_t count = counts[t * n_cols + c];
            counts[t * n_cols + c] = slot;
            slot += count;
        }
        out_indptr[c + 1] = slot;
    }
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int64_t t = 0; t < threads; ++t) {
        int64_t* next = counts.data() + t * n_cols;
        for (int64_t r = split[t]; r < split[t + 1]; ++r) {
            const int64_t row = row_of(r);
            for (int64_t p = a.indptr[row]; p < a.indptr[row + 1]; ++p) {
                const int64_t slot = next[a.indices[p]]++;
                out_indices[slot] = static_cast<I>(r);
                out_data[slot] = a.data[p];
            }
        }
    }
}

}  // namespace fastrec
