// Binding for the sparse helpers of csrc/include/fastrec/sparse.hpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "arrays.hpp"
#include "fastrec/sparse.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

// Canonical CSR of the transpose of a canonical CSR matrix, built in parallel.
template <class T, class I>
py::tuple csr_transpose(const carray<int64_t>& indptr, const carray<I>& indices, const carray<T>& data,
                        int64_t n_cols, int n_threads) {
    auto a = csr_view(indptr, indices, data, n_cols, "a");
    const int64_t nnz = a.indptr[a.n_rows];
    carray<int64_t> out_indptr(n_cols + 1);
    carray<I> out_indices(nnz);
    carray<T> out_data(nnz);
    {
        py::gil_scoped_release release;
        fastrec::csr_transpose(a, nullptr, a.n_rows, out_indptr.mutable_data(), out_indices.mutable_data(),
                               out_data.mutable_data(), std::max(1, n_threads));
    }
    return py::make_tuple(out_indptr, out_indices, out_data);
}

template <class T, class I>
void def_transpose(py::module_& m) {
    m.def("csr_transpose", &csr_transpose<T, I>, py::arg("indptr"), py::arg("indices"), py::arg("data"),
          py::arg("n_cols"), py::arg("n_threads"));
}

}  // namespace

FASTREC_BINDINGS(sparse) {
    def_transpose<float, int32_t>(m);
    def_transpose<float, int64_t>(m);
    def_transpose<double, int32_t>(m);
    def_transpose<double, int64_t>(m);
}
