// Binding for csrc/include/fastrec/cluster.hpp.
#include "fastrec/cluster.hpp"

#include "fields.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

template <class T>
void kmeans_assign_dense(FASTREC_PARAMS(FASTREC_KMEANS_ASSIGN_DENSE_FIELDS)) {
    fastrec::KMeansDenseArgs<T> args;
    FASTREC_UNPACK(FASTREC_KMEANS_ASSIGN_DENSE_FIELDS, args)
    py::gil_scoped_release release;
    FASTREC_DISPATCH(kmeans_assign_dense<T>(args));
}

template <class T, class I>
void kmeans_assign_csr(FASTREC_PARAMS(FASTREC_KMEANS_ASSIGN_CSR_FIELDS)) {
    fastrec::KMeansCsrArgs<T, I> args;
    FASTREC_UNPACK(FASTREC_KMEANS_ASSIGN_CSR_FIELDS, args)
    py::gil_scoped_release release;
    FASTREC_DISPATCH(kmeans_assign_csr<T, I>(args));
}

template <class T>
void sqdist_dense(FASTREC_PARAMS(FASTREC_SQDIST_DENSE_FIELDS)) {
    fastrec::SqDistArgs<T> args;
    FASTREC_UNPACK(FASTREC_SQDIST_DENSE_FIELDS, args)
    py::gil_scoped_release release;
    FASTREC_DISPATCH(sqdist_dense<T>(args));
}

template <class T>
void def_cluster_dense(py::module_& m) {
    m.def("kmeans_assign_dense", &kmeans_assign_dense<T>, FASTREC_PYARGS(FASTREC_KMEANS_ASSIGN_DENSE_FIELDS));
    m.def("sqdist_dense", &sqdist_dense<T>, FASTREC_PYARGS(FASTREC_SQDIST_DENSE_FIELDS));
}

template <class T, class I>
void def_cluster_csr(py::module_& m) {
    m.def("kmeans_assign_csr", &kmeans_assign_csr<T, I>, FASTREC_PYARGS(FASTREC_KMEANS_ASSIGN_CSR_FIELDS));
}

}  // namespace

FASTREC_BINDINGS(cluster) {
    // float64 first: pybind11 tries overloads in order, and the inputs (not
    // marked noconvert) would otherwise be converted to the first match.
    def_cluster_dense<double>(m);
    def_cluster_dense<float>(m);
    def_cluster_csr<double, int64_t>(m);
    def_cluster_csr<double, int32_t>(m);
    def_cluster_csr<float, int64_t>(m);
    def_cluster_csr<float, int32_t>(m);
}
