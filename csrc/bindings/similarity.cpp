// Binding for csrc/include/fastrec/similarity.hpp.
#include "fastrec/similarity.hpp"

#include "fields.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

template <class T, class I>
void cosine_topk(FASTREC_PARAMS(FASTREC_COSINE_TOPK_FIELDS)) {
    fastrec::CosineTopkArgs<T, I> args{};
    FASTREC_UNPACK(FASTREC_COSINE_TOPK_FIELDS, args)
    args.x.n_cols = args.yt.n_rows;
    if ((args.x_exp == nullptr) != (args.y_exp == nullptr)) {
        // Exponents of an empty side are empty arrays; with no rows or candidates nothing is scaled.
        if (args.x.n_rows > 0 && args.yt.n_cols > 0)
            throw py::value_error("x_exp, y_exp: pass both (the rows were rescaled) or neither");
        args.x_exp = args.y_exp = nullptr;
    }
    if (args.same_matrix && args.x.n_rows != args.yt.n_cols)
        throw py::value_error("same_matrix needs as many rows as candidates");
    py::gil_scoped_release release;
    FASTREC_DISPATCH(cosine_topk<T, I>(args));
}

template <class T, class I>
void def_cosine_topk(py::module_& m) {
    m.def("cosine_topk", &cosine_topk<T, I>, FASTREC_PYARGS(FASTREC_COSINE_TOPK_FIELDS));
}

}  // namespace

FASTREC_BINDINGS(similarity) {
    def_cosine_topk<float, int32_t>(m);
    def_cosine_topk<float, int64_t>(m);
    def_cosine_topk<double, int32_t>(m);
    def_cosine_topk<double, int64_t>(m);
}
