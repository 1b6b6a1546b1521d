// Binding for csrc/include/fastrec/metrics.hpp.
#include "arrays.hpp"
#include "fastrec/metrics.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

template <class I>
void ranking_metrics(const carray<int64_t>& recs, int64_t k, const carray<int64_t>& test_indptr,
                     const carray<I>& test_indices, int64_t n_items, carray<double>& out,
                     carray<uint8_t>& out_recommended, int n_threads) {
    if (recs.ndim() != 2) throw py::value_error("recs: expected a 2-D array");
    if (k < 1 || k > recs.shape(1)) throw py::value_error("k must be in [1, recs.shape[1]]");
    fastrec::RankingMetricsArgs<I> args;
    args.recs = recs.data();
    args.n_users = recs.shape(0);
    args.width = recs.shape(1);
    args.k = k;
    if (test_indptr.ndim() != 1 || test_indptr.shape(0) != args.n_users + 1)
        throw py::value_error("test_indptr: expected one offset per row of recs, plus one");
    const int64_t nnz = test_indptr.data()[args.n_users];
    require_length(test_indices, nnz, "test_indices");
    require_shape(out, args.n_users, fastrec::kRankingMetrics, "out");
    require_length(out_recommended, n_items, "out_recommended");
    args.test_indptr = test_indptr.data();
    args.test_indices = test_indices.data();
    args.out = out.mutable_data();
    args.out_recommended = out_recommended.mutable_data();
    args.n_threads = std::max(1, n_threads);
    py::gil_scoped_release release;
    for (int64_t u = 0; u < args.n_users; ++u)
        for (int64_t p = 0; p < k; ++p) {
            const int64_t item = args.recs[u * args.width + p];
            if (item < -1 || item >= n_items) throw py::value_error("recs: item index out of range");
        }
    FASTREC_DISPATCH(ranking_metrics<I>(args));
}

}  // namespace

FASTREC_BINDINGS(metrics) {
    m.def("ranking_metrics", &ranking_metrics<int32_t>, py::arg("recs"), py::arg("k"), py::arg("test_indptr"),
          py::arg("test_indices").noconvert(), py::arg("n_items"), py::arg("out").noconvert(),
          py::arg("out_recommended").noconvert(), py::arg("n_threads"));
    m.def("ranking_metrics", &ranking_metrics<int64_t>, py::arg("recs"), py::arg("k"), py::arg("test_indptr"),
          py::arg("test_indices").noconvert(), py::arg("n_items"), py::arg("out").noconvert(),
          py::arg("out_recommended").noconvert(), py::arg("n_threads"));
}
