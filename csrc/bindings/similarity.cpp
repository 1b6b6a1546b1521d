// Binding for csrc/include/fastrec/similarity.hpp.
#include "arrays.hpp"
#include "fastrec/similarity.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

template <class T, class I>
void cosine_topk(const carray<int64_t>& x_indptr, const carray<I>& x_indices, const carray<T>& x_data,
                 const carray<int64_t>& yt_indptr, const carray<I>& yt_indices, const carray<T>& yt_data,
                 int64_t n_candidates, int64_t row_begin, int64_t row_end, int64_t k, double shrink,
                 const carray<int32_t>& x_exp, const carray<int32_t>& y_exp, bool same_matrix, bool exclude_self,
                 carray<I>& out_indices, carray<T>& out_scores, carray<int64_t>& out_counts, int n_threads) {
    fastrec::CosineTopkArgs<T, I> args;
    args.yt = csr_view(yt_indptr, yt_indices, yt_data, n_candidates, "yt");
    args.x = csr_view(x_indptr, x_indices, x_data, args.yt.n_rows, "x");
    if (row_begin < 0 || row_end < row_begin || row_end > args.x.n_rows)
        throw py::value_error("rows out of range");
    if (k < 1) throw py::value_error("k must be >= 1");
    if (!(shrink >= 0) || !std::isfinite(shrink)) throw py::value_error("shrink must be finite and >= 0");
    const bool scaled = x_exp.size() > 0 || y_exp.size() > 0;
    if (scaled) {  // both or neither
        require_length(x_exp, args.x.n_rows, "x_exp");
        require_length(y_exp, n_candidates, "y_exp");
    }
    if (same_matrix && args.x.n_rows != n_candidates)
        throw py::value_error("same_matrix needs as many rows as candidates");
    const int64_t n_out = row_end - row_begin;
    require_shape(out_indices, n_out, k, "out_indices");
    require_shape(out_scores, n_out, k, "out_scores");
    require_length(out_counts, n_out, "out_counts");
    args.row_begin = row_begin;
    args.row_end = row_end;
    args.k = k;
    args.shrink = shrink;
    args.x_exp = scaled ? x_exp.data() : nullptr;
    args.y_exp = scaled ? y_exp.data() : nullptr;
    args.same_matrix = same_matrix;
    args.exclude_self = exclude_self;
    args.out_indices = out_indices.mutable_data();
    args.out_scores = out_scores.mutable_data();
    args.out_counts = out_counts.mutable_data();
    args.n_threads = std::max(1, n_threads);
    py::gil_scoped_release release;
    FASTREC_DISPATCH(cosine_topk<T, I>(args));
}

template <class T, class I>
void def_cosine(py::module_& m) {
    m.def("cosine_topk", &cosine_topk<T, I>, py::arg("x_indptr"), py::arg("x_indices"), py::arg("x_data"),
          py::arg("yt_indptr"), py::arg("yt_indices"), py::arg("yt_data"), py::arg("n_candidates"),
          py::arg("row_begin"), py::arg("row_end"), py::arg("k"), py::arg("shrink"),
          py::arg("x_exp"), py::arg("y_exp"), py::arg("same_matrix"),
          py::arg("exclude_self"), py::arg("out_indices").noconvert(), py::arg("out_scores").noconvert(),
          py::arg("out_counts").noconvert(), py::arg("n_threads"));
}

}  // namespace

FASTREC_BINDINGS(similarity) {
    def_cosine<float, int32_t>(m);
    def_cosine<float, int64_t>(m);
    def_cosine<double, int32_t>(m);
    def_cosine<double, int64_t>(m);
}
