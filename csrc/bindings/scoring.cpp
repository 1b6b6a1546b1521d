// Binding for csrc/include/fastrec/scoring.hpp.
#include <string>

#include "arrays.hpp"
#include "fastrec/scoring.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

// A CSR pattern (indptr, indices) of n_rows rows, or none when indptr is empty.
template <class I>
void pattern(const carray<int64_t>& indptr, const carray<I>& indices, int64_t n_rows, const char* name,
             const int64_t*& out_indptr, const I*& out_indices) {
    out_indptr = nullptr;
    out_indices = nullptr;
    if (indptr.ndim() == 1 && indptr.shape(0) == 0) return;
    require_length(indptr, n_rows + 1, name);
    require_length(indices, indptr.data()[n_rows], name);
    out_indptr = indptr.data();
    out_indices = indices.data();
}

template <class T, class I>
void topn(const carray<T>& u, const carray<T>& v, const carray<int64_t>& exclude_indptr,
          const carray<I>& exclude_indices, const carray<int64_t>& cand_indptr, const carray<I>& cand_indices,
          carray<I>& out_indices, carray<T>& out_scores, int n_threads) {
    if (u.ndim() != 2 || v.ndim() != 2 || u.shape(1) != v.shape(1))
        throw py::value_error("u, v: expected 2-D arrays with the same number of columns");
    fastrec::TopnArgs<T, I> args;
    args.u = u.data();
    args.v = v.data();
    args.n_queries = u.shape(0);
    args.n_items = v.shape(0);
    args.f = u.shape(1);
    if (out_indices.ndim() != 2 || out_indices.shape(1) < 1)
        throw py::value_error("out_indices: expected a 2-D array with at least one column");
    args.n = out_indices.shape(1);
    require_shape(out_indices, args.n_queries, args.n, "out_indices");
    require_shape(out_scores, args.n_queries, args.n, "out_scores");
    pattern(exclude_indptr, exclude_indices, args.n_queries, "exclude", args.exclude_indptr,
            args.exclude_indices);
    pattern(cand_indptr, cand_indices, args.n_queries, "candidates", args.cand_indptr, args.cand_indices);
    if (args.cand_indptr != nullptr) {  // candidates index rows of v: keep the reads in bounds
        const int64_t nnz = args.cand_indptr[args.n_queries];
        for (int64_t p = 0; p < nnz; ++p)
            if (args.cand_indices[p] < 0 || args.cand_indices[p] >= args.n_items)
                throw py::value_error("candidates: item index out of range");
    }
    args.out_indices = out_indices.mutable_data();
    args.out_scores = out_scores.mutable_data();
    args.n_threads = std::max(1, n_threads);
    py::gil_scoped_release release;
    FASTREC_DISPATCH(topn<T, I>(args));
}

template <class T, class I>
void def_topn(py::module_& m) {
    m.def("topn", &topn<T, I>, py::arg("u"), py::arg("v"), py::arg("exclude_indptr"),
          py::arg("exclude_indices"), py::arg("cand_indptr"), py::arg("cand_indices"),
          py::arg("out_indices").noconvert(), py::arg("out_scores").noconvert(), py::arg("n_threads"));
}

}  // namespace

FASTREC_BINDINGS(scoring) {
    // float64 first: pybind11 tries overloads in order, and the inputs (not
    // marked noconvert) would otherwise be converted to the first match.
    def_topn<double, int64_t>(m);
    def_topn<double, int32_t>(m);
    def_topn<float, int64_t>(m);
    def_topn<float, int32_t>(m);
}
