// Array checks shared by the bindings.  The Python layer (fastrec._validation)
// already produces canonical arrays; these checks only guard the C++ boundary
// against misuse of the private module, so a wrong call raises instead of
// reading out of bounds.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "fastrec/sparse.hpp"

namespace fastrec::bindings {

namespace py = pybind11;

template <class T>
using carray = py::array_t<T, py::array::c_style>;

template <class T>
void require_length(const carray<T>& a, int64_t length, const char* name) {
    if (a.ndim() != 1 || a.shape(0) != length)
        throw py::value_error(std::string(name) + ": expected a 1-D array of length " +
                              std::to_string(length));
}

template <class T>
void require_shape(const carray<T>& a, int64_t rows, int64_t cols, const char* name) {
    if (a.ndim() != 2 || a.shape(0) != rows || a.shape(1) != cols)
        throw py::value_error(std::string(name) + ": expected shape (" + std::to_string(rows) + ", " +
                              std::to_string(cols) + ")");
}

// Views a CSR matrix passed as (indptr, indices, data, n_cols).
template <class T, class I>
CsrView<T, I> csr_view(const carray<int64_t>& indptr, const carray<I>& indices, const carray<T>& data,
                       int64_t n_cols, const char* name) {
    if (indptr.ndim() != 1 || indptr.shape(0) < 1)
        throw py::value_error(std::string(name) + ": indptr must be 1-D and non-empty");
    const int64_t n_rows = indptr.shape(0) - 1;
    const int64_t nnz = indptr.data()[n_rows];
    require_length(indices, nnz, name);
    require_length(data, nnz, name);
    CsrView<T, I> view;
    view.indptr = indptr.data();
    view.indices = indices.data();
    view.data = data.data();
    view.n_rows = n_rows;
    view.n_cols = n_cols;
    return view;
}

}  // namespace fastrec::bindings
