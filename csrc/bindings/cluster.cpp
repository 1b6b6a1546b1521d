// Binding for csrc/include/fastrec/cluster.hpp.
#include "arrays.hpp"
#include "fastrec/cluster.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

// Checks the outputs shared by the dense and CSR passes and fills `args`.
template <class T, class Args>
void common_outputs(Args& args, int64_t n, int64_t d, int64_t k, const carray<T>& x_sqnorm,
                    const carray<T>& sample_weight, const carray<T>& centers, carray<int32_t>& labels,
                    carray<T>& min_dist, carray<double>& sums, carray<double>& counts,
                    carray<double>& inertia, bool compute_sums, int n_threads) {
    if (k < 1) throw py::value_error("centers: need at least one centre");
    require_length(x_sqnorm, n, "x_sqnorm");
    require_length(sample_weight, n, "sample_weight");
    require_shape(centers, k, d, "centers");
    require_length(labels, n, "labels");
    require_length(min_dist, n, "min_dist");
    require_length(inertia, 1, "inertia");
    args.x_sqnorm = x_sqnorm.data();
    args.weight = sample_weight.data();
    args.centers = centers.data();
    args.labels = labels.mutable_data();
    args.min_dist = min_dist.mutable_data();
    args.inertia = inertia.mutable_data();
    if (compute_sums) {
        require_shape(sums, k, d, "sums");
        require_length(counts, k, "counts");
        args.sums = sums.mutable_data();
        args.counts = counts.mutable_data();
    }
    args.n_threads = std::max(1, n_threads);
}

template <class T>
void kmeans_assign_dense(const carray<T>& x, const carray<T>& x_sqnorm, const carray<T>& sample_weight,
                         const carray<T>& centers, carray<int32_t>& labels, carray<T>& min_dist,
                         carray<double>& sums, carray<double>& counts, carray<double>& inertia,
                         bool compute_sums, int n_threads) {
    if (x.ndim() != 2) throw py::value_error("x: expected a 2-D array");
    if (centers.ndim() != 2) throw py::value_error("centers: expected a 2-D array");
    fastrec::KMeansDenseArgs<T> args;
    args.x = x.data();
    args.n = x.shape(0);
    args.d = x.shape(1);
    args.k = centers.shape(0);
    common_outputs<T>(args, args.n, args.d, args.k, x_sqnorm, sample_weight, centers, labels, min_dist,
                      sums, counts, inertia, compute_sums, n_threads);
    py::gil_scoped_release release;
    FASTREC_DISPATCH(kmeans_assign_dense<T>(args));
}

template <class T, class I>
void kmeans_assign_csr(const carray<int64_t>& indptr, const carray<I>& indices, const carray<T>& data,
                       int64_t n_features, const carray<T>& x_sqnorm, const carray<T>& sample_weight,
                       const carray<T>& centers, carray<int32_t>& labels, carray<T>& min_dist,
                       carray<double>& sums, carray<double>& counts, carray<double>& inertia,
                       bool compute_sums, int n_threads) {
    if (centers.ndim() != 2) throw py::value_error("centers: expected a 2-D array");
    fastrec::KMeansCsrArgs<T, I> args;
    args.x = csr_view(indptr, indices, data, n_features, "x");
    args.k = centers.shape(0);
    common_outputs<T>(args, args.x.n_rows, n_features, args.k, x_sqnorm, sample_weight, centers, labels,
                      min_dist, sums, counts, inertia, compute_sums, n_threads);
    py::gil_scoped_release release;
    FASTREC_DISPATCH(kmeans_assign_csr<T, I>(args));
}

template <class T>
void sqdist_dense(const carray<T>& x, const carray<T>& x_sqnorm, const carray<T>& y, carray<T>& out,
                  int n_threads) {
    if (x.ndim() != 2 || y.ndim() != 2 || x.shape(1) != y.shape(1))
        throw py::value_error("x, y: expected 2-D arrays with the same number of columns");
    fastrec::SqDistArgs<T> args;
    args.x = x.data();
    args.y = y.data();
    args.n = x.shape(0);
    args.m = y.shape(0);
    args.d = x.shape(1);
    require_length(x_sqnorm, args.n, "x_sqnorm");
    require_shape(out, args.n, args.m, "out");
    args.x_sqnorm = x_sqnorm.data();
    args.out = out.mutable_data();
    args.n_threads = std::max(1, n_threads);
    py::gil_scoped_release release;
    FASTREC_DISPATCH(sqdist_dense<T>(args));
}

template <class T>
void def_kmeans(py::module_& m) {
    m.def("kmeans_assign_dense", &kmeans_assign_dense<T>, py::arg("x"), py::arg("x_sqnorm"),
          py::arg("sample_weight"), py::arg("centers"), py::arg("labels").noconvert(),
          py::arg("min_dist").noconvert(), py::arg("sums").noconvert(), py::arg("counts").noconvert(),
          py::arg("inertia").noconvert(), py::arg("compute_sums"), py::arg("n_threads"));
    m.def("sqdist_dense", &sqdist_dense<T>, py::arg("x"), py::arg("x_sqnorm"), py::arg("y"),
          py::arg("out").noconvert(), py::arg("n_threads"));
}

template <class T, class I>
void def_kmeans_csr(py::module_& m) {
    m.def("kmeans_assign_csr", &kmeans_assign_csr<T, I>, py::arg("indptr"), py::arg("indices"),
          py::arg("data"), py::arg("n_features"), py::arg("x_sqnorm"), py::arg("sample_weight"),
          py::arg("centers"), py::arg("labels").noconvert(), py::arg("min_dist").noconvert(),
          py::arg("sums").noconvert(), py::arg("counts").noconvert(), py::arg("inertia").noconvert(),
          py::arg("compute_sums"), py::arg("n_threads"));
}

}  // namespace

FASTREC_BINDINGS(cluster) {
    // float64 first: pybind11 tries overloads in order, and the inputs (not
    // marked noconvert) would otherwise be converted to the first match.
    def_kmeans<double>(m);
    def_kmeans<float>(m);
    def_kmeans_csr<double, int64_t>(m);
    def_kmeans_csr<double, int32_t>(m);
    def_kmeans_csr<float, int64_t>(m);
    def_kmeans_csr<float, int32_t>(m);
}
