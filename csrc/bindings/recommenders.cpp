// Binding for csrc/include/fastrec/recommenders.hpp.
#include <string>

#include "arrays.hpp"
#include "fastrec/recommenders.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

template <class I>
void require_below(const I* values, int64_t count, int64_t bound, const char* name) {
    bool bad = false;
    for (int64_t t = 0; t < count; ++t) bad |= (values[t] < 0) | (values[t] >= bound);
    if (bad) throw py::value_error(std::string(name) + ": index out of range");
}

template <class T, class I>
void sparse_score_topn(const carray<int64_t>& a_indptr, const carray<I>& a_indices, const carray<T>& a_data,
                       const carray<int64_t>& w_indptr, const carray<I>& w_indices, const carray<T>& w_data,
                       int64_t n_items, const carray<int64_t>& seen_indptr, const carray<I>& seen_indices,
                       const carray<int64_t>& rows, const carray<uint8_t>& allowed, bool exclude_seen,
                       int64_t n, carray<int64_t>& out_indices, carray<T>& out_scores, int n_threads) {
    if (n < 1) throw py::value_error("n must be >= 1");
    if (n_items < 0) throw py::value_error("n_items must be >= 0");
    fastrec::SparseScoreTopnArgs<T, I> args;
    args.w = csr_view(w_indptr, w_indices, w_data, n_items, "w");
    args.a = csr_view(a_indptr, a_indices, a_data, args.w.n_rows, "a");
    if (seen_indptr.ndim() != 1 || seen_indptr.shape(0) != args.a.n_rows + 1)
        throw py::value_error("seen_indptr: expected one offset per row of a, plus one");
    require_length(seen_indices, seen_indptr.data()[args.a.n_rows], "seen_indices");
    if (allowed.ndim() != 1 || (allowed.shape(0) != 0 && allowed.shape(0) != n_items))
        throw py::value_error("allowed: expected an empty array or one flag per item");
    const int64_t n_out = rows.ndim() == 1 ? rows.shape(0) : -1;
    require_length(rows, n_out, "rows");
    require_shape(out_indices, n_out, n, "out_indices");
    require_shape(out_scores, n_out, n, "out_scores");
    args.seen_indptr = seen_indptr.data();
    args.seen_indices = seen_indices.data();
    args.exclude_seen = exclude_seen;
    args.allowed = allowed.shape(0) ? allowed.data() : nullptr;
    args.rows = rows.data();
    args.n_out = n_out;
    args.n = n;
    args.out_indices = out_indices.mutable_data();
    args.out_scores = out_scores.mutable_data();
    args.n_threads = std::max(1, n_threads);
    py::gil_scoped_release release;
    require_below(args.a.indices, args.a.indptr[args.a.n_rows], args.w.n_rows, "a.indices");
    require_below(args.w.indices, args.w.indptr[args.w.n_rows], n_items, "w.indices");
    require_below(args.seen_indices, args.seen_indptr[args.a.n_rows], n_items, "seen_indices");
    for (int64_t r = 0; r < n_out; ++r)
        if (args.rows[r] < -1 || args.rows[r] >= args.a.n_rows) throw py::value_error("rows: index out of range");
    FASTREC_DISPATCH(sparse_score_topn<T, I>(args));
}

template <class T>
void dense_topn(const carray<T>& scores, int64_t n, carray<int64_t>& out_indices, carray<T>& out_scores,
                int n_threads) {
    if (n < 1) throw py::value_error("n must be >= 1");
    if (scores.ndim() != 2) throw py::value_error("scores: expected a 2-D array");
    fastrec::DenseTopnArgs<T> args;
    args.scores = scores.data();
    args.n_rows = scores.shape(0);
    args.n_cols = scores.shape(1);
    args.n = n;
    require_shape(out_indices, args.n_rows, n, "out_indices");
    require_shape(out_scores, args.n_rows, n, "out_scores");
    args.out_indices = out_indices.mutable_data();
    args.out_scores = out_scores.mutable_data();
    args.n_threads = std::max(1, n_threads);
    py::gil_scoped_release release;
    FASTREC_DISPATCH(dense_topn<T>(args));
}

template <class T, class I>
void def_sparse(py::module_& m) {
    m.def("sparse_score_topn", &sparse_score_topn<T, I>, py::arg("a_indptr"), py::arg("a_indices"),
          py::arg("a_data"), py::arg("w_indptr"), py::arg("w_indices"), py::arg("w_data"), py::arg("n_items"),
          py::arg("seen_indptr"), py::arg("seen_indices"), py::arg("rows"), py::arg("allowed"),
          py::arg("exclude_seen"), py::arg("n"), py::arg("out_indices").noconvert(),
          py::arg("out_scores").noconvert(), py::arg("n_threads"));
}

template <class T>
void def_dense(py::module_& m) {
    m.def("dense_topn", &dense_topn<T>, py::arg("scores"), py::arg("n"), py::arg("out_indices").noconvert(),
          py::arg("out_scores").noconvert(), py::arg("n_threads"));
}

}  // namespace

FASTREC_BINDINGS(recommenders) {
    // Outputs are noconvert, so the overload whose output dtypes match is chosen.
    def_sparse<float, int32_t>(m);
    def_sparse<float, int64_t>(m);
    def_sparse<double, int32_t>(m);
    def_sparse<double, int64_t>(m);
    def_dense<float>(m);
    def_dense<double>(m);
}
