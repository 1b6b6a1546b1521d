// Binding for csrc/include/fastrec/recommenders.hpp.
#include <string>

#include "fastrec/recommenders.hpp"

#include "fields.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

template <class I>
void require_below(const I* values, int64_t count, int64_t bound, const char* name) {
    bool bad = false;
    for (int64_t t = 0; t < count; ++t) bad |= (values[t] < 0) | (values[t] >= bound);
    if (bad) throw py::value_error(std::string(name) + ": index out of range");
}

template <class T, class I>
void sparse_score_topn(FASTREC_PARAMS(FASTREC_SPARSE_SCORE_TOPN_FIELDS)) {
    fastrec::SparseScoreTopnArgs<T, I> args{};
    FASTREC_UNPACK(FASTREC_SPARSE_SCORE_TOPN_FIELDS, args)
    args.a.n_cols = args.w.n_rows;
    py::gil_scoped_release release;
    require_below(args.a.indices, nnz(args.a), args.w.n_rows, "a.indices");
    require_below(args.w.indices, nnz(args.w), args.w.n_cols, "w.indices");
    require_below(args.seen_indices, args.seen_indptr[args.a.n_rows], args.w.n_cols, "seen_indices");
    for (int64_t r = 0; r < args.n_out; ++r)
        if (args.rows[r] < -1 || args.rows[r] >= args.a.n_rows)
            throw py::value_error("rows: index out of range");
    FASTREC_DISPATCH(sparse_score_topn<T, I>(args));
}

template <class T>
void dense_topn(FASTREC_PARAMS(FASTREC_DENSE_TOPN_FIELDS)) {
    fastrec::DenseTopnArgs<T> args{};
    FASTREC_UNPACK(FASTREC_DENSE_TOPN_FIELDS, args)
    py::gil_scoped_release release;
    FASTREC_DISPATCH(dense_topn<T>(args));
}

template <class T, class I>
void def_sparse_score_topn(py::module_& m) {
    m.def("sparse_score_topn", &sparse_score_topn<T, I>, FASTREC_PYARGS(FASTREC_SPARSE_SCORE_TOPN_FIELDS));
}

template <class T>
void def_dense_topn(py::module_& m) {
    m.def("dense_topn", &dense_topn<T>, FASTREC_PYARGS(FASTREC_DENSE_TOPN_FIELDS));
}

}  // namespace

FASTREC_BINDINGS(recommenders) {
    // Outputs are noconvert, so the overload whose output dtypes match is chosen.
    def_sparse_score_topn<float, int32_t>(m);
    def_sparse_score_topn<float, int64_t>(m);
    def_sparse_score_topn<double, int32_t>(m);
    def_sparse_score_topn<double, int64_t>(m);
    def_dense_topn<float>(m);
    def_dense_topn<double>(m);
}
