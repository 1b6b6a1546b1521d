// Array types and checks shared by the bindings.  The Python layer
// (fastrec._validation) already produces canonical arrays; these checks only guard
// the C++ boundary against misuse of the private module, so a wrong call raises
// instead of reading out of bounds.  Kernel arguments are checked from their field
// tables (fields.hpp).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

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

}  // namespace fastrec::bindings
