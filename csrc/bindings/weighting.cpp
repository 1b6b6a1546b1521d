// Binding for csrc/include/fastrec/weighting.hpp.
#include <string>

#include "fastrec/weighting.hpp"

#include "fields.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

template <class T, class I>
void check_document_args(const fastrec::DocumentWeightArgs<T, I>& args) {
    const int64_t nnz_x = args.x.indptr[args.x.n_rows];
    bool bad = false;
    for (int64_t p = 0; p < nnz_x; ++p) bad |= (args.x.indices[p] < 0) | (args.x.indices[p] >= args.x.n_cols);
    if (bad) throw py::value_error("indices: index out of range");
    if (!(args.b <= 1.0)) throw py::value_error("b: must lie in [0, 1]");
}

template <class T, class I>
void bm25_weight(FASTREC_PARAMS(FASTREC_BM25_WEIGHT_FIELDS)) {
    fastrec::DocumentWeightArgs<T, I> args{};
    FASTREC_UNPACK(FASTREC_BM25_WEIGHT_FIELDS, args)
    args.bm25 = true;
    py::gil_scoped_release release;
    check_document_args(args);
    FASTREC_DISPATCH(document_weight<T, I>(args));
}

template <class T, class I>
void tfidf_weight(FASTREC_PARAMS(FASTREC_TFIDF_WEIGHT_FIELDS)) {
    fastrec::DocumentWeightArgs<T, I> args{};
    FASTREC_UNPACK(FASTREC_TFIDF_WEIGHT_FIELDS, args)
    args.bm25 = false;
    py::gil_scoped_release release;
    check_document_args(args);
    FASTREC_DISPATCH(document_weight<T, I>(args));
}

template <class T>
void confidence_weight(FASTREC_PARAMS(FASTREC_CONFIDENCE_WEIGHT_FIELDS)) {
    fastrec::ConfidenceWeightArgs<T> args{};
    FASTREC_UNPACK(FASTREC_CONFIDENCE_WEIGHT_FIELDS, args)
    py::gil_scoped_release release;
    FASTREC_DISPATCH(confidence_weight<T>(args));
}

template <class T, class I>
void def_document(py::module_& m) {
    m.def("bm25_weight", &bm25_weight<T, I>, FASTREC_PYARGS(FASTREC_BM25_WEIGHT_FIELDS));
    m.def("tfidf_weight", &tfidf_weight<T, I>, FASTREC_PYARGS(FASTREC_TFIDF_WEIGHT_FIELDS));
}

template <class T>
void def_confidence(py::module_& m) {
    m.def("confidence_weight", &confidence_weight<T>, FASTREC_PYARGS(FASTREC_CONFIDENCE_WEIGHT_FIELDS));
}

}  // namespace

FASTREC_BINDINGS(weighting) {
    // Outputs are noconvert, so the overload whose output dtype matches is chosen.
    def_document<float, int32_t>(m);
    def_document<float, int64_t>(m);
    def_document<double, int32_t>(m);
    def_document<double, int64_t>(m);
    def_confidence<float>(m);
    def_confidence<double>(m);
}
