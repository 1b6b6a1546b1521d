// Binding for csrc/include/fastrec/scoring.hpp.
#include "fastrec/scoring.hpp"

#include "fields.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

template <class T, class I>
void topn(FASTREC_PARAMS(FASTREC_TOPN_FIELDS)) {
    fastrec::TopnArgs<T, I> args;
    FASTREC_UNPACK(FASTREC_TOPN_FIELDS, args)
    if (args.cand_indptr != nullptr) {  // candidates index rows of v: keep the reads in bounds
        const int64_t nnz = args.cand_indptr[args.n_queries];
        for (int64_t p = 0; p < nnz; ++p)
            if (args.cand_indices[p] < 0 || args.cand_indices[p] >= args.n_items)
                throw py::value_error("candidates: item index out of range");
    }
    py::gil_scoped_release release;
    FASTREC_DISPATCH(topn<T, I>(args));
}

template <class T, class I>
void def_topn(py::module_& m) {
    m.def("topn", &topn<T, I>, FASTREC_PYARGS(FASTREC_TOPN_FIELDS));
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
