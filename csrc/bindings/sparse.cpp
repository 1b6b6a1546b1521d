// Binding for the sparse helpers of csrc/include/fastrec/sparse.hpp.
#include "fastrec/sparse.hpp"

#include "fields.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

// Canonical CSR of the transpose of a canonical CSR matrix, built in parallel.
template <class T, class I>
py::tuple csr_transpose(FASTREC_PARAMS(FASTREC_CSR_TRANSPOSE_FIELDS)) {
    fastrec::CsrTransposeArgs<T, I> args{};
    FASTREC_UNPACK(FASTREC_CSR_TRANSPOSE_FIELDS, args)
    const int64_t n_out = nnz(args.a);
    carray<int64_t> out_indptr(args.a.n_cols + 1);
    carray<I> out_indices(n_out);
    carray<T> out_data(n_out);
    {
        py::gil_scoped_release release;
        fastrec::csr_transpose(args.a, nullptr, args.a.n_rows, out_indptr.mutable_data(),
                               out_indices.mutable_data(), out_data.mutable_data(), args.n_threads);
    }
    return py::make_tuple(out_indptr, out_indices, out_data);
}

template <class T, class I>
void def_transpose(py::module_& m) {
    m.def("csr_transpose", &csr_transpose<T, I>, FASTREC_PYARGS(FASTREC_CSR_TRANSPOSE_FIELDS));
}

}  // namespace

FASTREC_BINDINGS(sparse) {
    def_transpose<float, int32_t>(m);
    def_transpose<float, int64_t>(m);
    def_transpose<double, int32_t>(m);
    def_transpose<double, int64_t>(m);
}
