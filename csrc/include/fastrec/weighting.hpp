// Weighting of behaviour data (counts of plays, clicks, purchases) stored as CSR.
//
// BM25 and TF-IDF treat one axis of X as documents and the other as terms: with
// documents on the rows (by_rows), row d is a document and column t a term.
//
//   N         number of documents
//   df[t]     stored entries of term t (explicit zeros count: they are stored)
//   idf[t]    log(N) - log1p(df[t])
//   len[d]    sum of document d's stored values;  avg = sum(len) / N
//   bm25      x * (K1 + 1) / (K1 * ((1 - B) + B * len[d] / avg) + x) * idf[t]
//   tfidf     sqrt(x) * idf[t]
//
// A stored zero weighs 0 (BM25's 0 / 0 with K1 = 0 included), and with avg == 0
// (no positive value) every document has the average length.
//
// confidence_weight maps every stored value x to 1 + alpha * x, or with `log`
// to 1 + alpha * log1p(x).
//
// Everything is computed in double and rounded once to T.  Per-document sums
// and term counts run in stored order (sequential where entries of one
// document are spread over rows), so results do not depend on the thread count.
#pragma once

#include "fastrec/prelude.hpp"

namespace fastrec {

// Inputs and outputs of bm25_weight and tfidf_weight; arrays owned by the caller.
template <class T, class I>
struct DocumentWeightArgs {
    CsrView<T, I> x;  // IN  n_rows x n_cols, values >= 0 (any index order, no duplicates needed)
    bool by_rows;     // IN  true: rows are documents, columns terms; false: the transpose
    bool bm25;        // IN  true: BM25 (k1, b); false: TF-IDF
    double k1;        // IN  BM25 term-frequency saturation (>= 0)
    double b;         // IN  BM25 length normalisation in [0, 1]
    T* out_data;      // OUT (nnz) weight of every stored entry, same order as x.data
    int n_threads;    // IN  OpenMP threads (>= 1)
};

// The Python-visible arguments (see csrc/bindings/fields.hpp).
#define FASTREC_BM25_WEIGHT_FIELDS(F, A)                               \
    F(indptr, int64_t, IN, A.x.indptr, (bind_indptr(A.x.n_rows)))      \
    F(indices, I, IN, A.x.indices, (nnz(A.x)))                         \
    F(data, T, IN, A.x.data, (nnz(A.x)))                               \
    F(n_cols, int64_t, VALUE, A.x.n_cols, (at_least(0)))               \
    F(k1, double, VALUE, A.k1, (finite_at_least(0)))                   \
    F(b, double, VALUE, A.b, (finite_at_least(0)))                     \
    F(by_rows, bool, VALUE, A.by_rows, ())                             \
    F(out_data, T, OUT, A.out_data, (nnz(A.x)))                        \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))

#define FASTREC_TFIDF_WEIGHT_FIELDS(F, A)                              \
    F(indptr, int64_t, IN, A.x.indptr, (bind_indptr(A.x.n_rows)))      \
    F(indices, I, IN, A.x.indices, (nnz(A.x)))                         \
    F(data, T, IN, A.x.data, (nnz(A.x)))                               \
    F(n_cols, int64_t, VALUE, A.x.n_cols, (at_least(0)))               \
    F(by_rows, bool, VALUE, A.by_rows, ())                             \
    F(out_data, T, OUT, A.out_data, (nnz(A.x)))                        \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))

template <class T>
struct ConfidenceWeightArgs {
    const T* data;  // IN  (n) stored values, >= 0
    int64_t n;      // IN
    double alpha;   // IN  >= 0
    bool log;       // IN  1 + alpha * log1p(x) instead of 1 + alpha * x
    T* out_data;    // OUT (n)
    int n_threads;  // IN
};

#define FASTREC_CONFIDENCE_WEIGHT_FIELDS(F, A)              \
    F(data, T, IN, A.data, (bind(A.n)))                     \
    F(alpha, double, VALUE, A.alpha, (finite_at_least(0)))  \
    F(log, bool, VALUE, A.log, ())                          \
    F(out_data, T, OUT, A.out_data, (A.n))                  \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))

}  // namespace fastrec

FASTREC_DECLARE_FOR_EACH_ISA(template <class T, class I> void document_weight(const DocumentWeightArgs<T, I>& args);
                             template <class T> void confidence_weight(const ConfidenceWeightArgs<T>& args);)

#ifdef FASTREC_ISA_NS
namespace fastrec {
namespace FASTREC_ISA_NS {

template <class T, class I>
void document_weight(const DocumentWeightArgs<T, I>& args) {
    const auto& x = args.x;
    const int64_t n_docs = args.by_rows ? x.n_rows : x.n_cols;
    const int64_t n_terms = args.by_rows ? x.n_cols : x.n_rows;
    if (x.indptr[x.n_rows] == 0) return;

    // Term counts and document lengths.  Along the rows each row is summed by
    // one thread; across the rows one sequential pass keeps the stored order.
    std::vector<double> idf(static_cast<std::size_t>(n_terms), 0.0);
    std::vector<double> length(static_cast<std::size_t>(n_docs), 0.0);
    if (args.by_rows) {
        for (int64_t p = 0; p < x.indptr[x.n_rows]; ++p) idf[x.indices[p]] += 1.0;
#pragma omp parallel for num_threads(args.n_threads) schedule(static, 1024)
        for (int64_t row = 0; row < x.n_rows; ++row) {
            double sum = 0.0;
            for (int64_t p = x.indptr[row]; p < x.indptr[row + 1]; ++p) sum += static_cast<double>(x.data[p]);
            length[row] = sum;
        }
    } else {
        for (int64_t row = 0; row < x.n_rows; ++row) {
            idf[row] = static_cast<double>(x.row_nnz(row));
            for (int64_t p = x.indptr[row]; p < x.indptr[row + 1]; ++p)
                length[x.indices[p]] += static_cast<double>(x.data[p]);
        }
    }
    const double log_docs = std::log(static_cast<double>(n_docs));
    for (double& value : idf) value = log_docs - std::log1p(value);
    double total = 0.0;
    for (double value : length) total += value;
    const double average = total / static_cast<double>(n_docs);

    const double k1 = args.k1, b = args.b;
    const bool bm25 = args.bm25, by_rows = args.by_rows;
#pragma omp parallel for num_threads(args.n_threads) schedule(dynamic, 256)
    for (int64_t row = 0; row < x.n_rows; ++row) {
        for (int64_t p = x.indptr[row]; p < x.indptr[row + 1]; ++p) {
            const double value = static_cast<double>(x.data[p]);
            const int64_t doc = by_rows ? row : static_cast<int64_t>(x.indices[p]);
            const int64_t term = by_rows ? static_cast<int64_t>(x.indices[p]) : row;
            double weight = 0.0;
            if (value != 0) {  // a stored zero weighs 0, never 0 / 0
                if (bm25) {
                    const double ratio = average > 0 ? length[doc] / average : 1.0;
                    const double norm = (1.0 - b) + b * ratio;
                    weight = value * (k1 + 1.0) / (k1 * norm + value) * idf[term];
                } else {
                    weight = std::sqrt(value) * idf[term];
                }
            }
            args.out_data[p] = static_cast<T>(weight);
        }
    }
}

template <class T>
void confidence_weight(const ConfidenceWeightArgs<T>& args) {
    const double alpha = args.alpha;
    const bool log = args.log;
#pragma omp parallel for num_threads(args.n_threads) schedule(static, 4096)
    for (int64_t p = 0; p < args.n; ++p) {
        const double value = static_cast<double>(args.data[p]);
        args.out_data[p] = static_cast<T>(1.0 + alpha * (log ? std::log1p(value) : value));
    }
}

}  // namespace FASTREC_ISA_NS
}  // namespace fastrec
#endif  // FASTREC_ISA_NS
