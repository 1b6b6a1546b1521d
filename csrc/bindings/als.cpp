// Binding for csrc/include/fastrec/als.hpp.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "fastrec/als.hpp"

#include "fields.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

// Factor matrices must have rows of whole 64-byte vectors starting on 64-byte
// boundaries: the kernel reads them as aligned vectors.
template <class T>
void require_als_rows(const T* rows, int64_t n_rows, int64_t stride, const char* name) {
    constexpr int64_t lanes = 64 / static_cast<int64_t>(sizeof(T));
    if (stride % lanes != 0 || stride == 0)
        throw py::value_error(std::string(name) + ": expected 2-D rows padded to a multiple of " +
                              std::to_string(lanes) + " elements");
    if (n_rows > 0 && reinterpret_cast<std::uintptr_t>(rows) % 64 != 0)
        throw py::value_error(std::string(name) + ": rows must start on 64-byte boundaries");
}

template <class T>
void als_half_step(FASTREC_PARAMS(FASTREC_ALS_HALF_STEP_FIELDS)) {
    fastrec::AlsHalfStepArgs<T> a{};
    FASTREC_UNPACK(FASTREC_ALS_HALF_STEP_FIELDS, a)
    require_als_rows(a.X, a.n_rows, a.stride, "X");
    require_als_rows(a.Y, a.n_cols, a.stride, "Y");
    py::gil_scoped_release release;
    const int64_t* p = a.indptr;
    bool bad = p[0] != 0 || p[a.n_rows] != a.nnz;
    for (int64_t u = 0; u < a.n_rows; ++u) bad |= p[u + 1] < p[u];
    if (bad) throw py::value_error("indptr must be non-decreasing from 0 to len(indices)");
    for (int64_t e = 0; e < a.nnz; ++e) bad |= (a.indices[e] < 0) | (a.indices[e] >= a.n_cols);
    if (bad) throw py::value_error("indices: index out of range of the rows of Y");
    FASTREC_DISPATCH(als_half_step<T>(a));
}

template <class T>
void def_als(py::module_& m) {
    m.def("als_half_step", &als_half_step<T>, FASTREC_PYARGS(FASTREC_ALS_HALF_STEP_FIELDS));
}

}  // namespace

FASTREC_BINDINGS(als) {
    def_als<float>(m);
    def_als<double>(m);
}
