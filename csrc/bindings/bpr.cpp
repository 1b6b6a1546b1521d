// Binding for csrc/include/fastrec/bpr.hpp.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "fastrec/bpr.hpp"

#include "fields.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

// Factor matrices must have rows of whole 64-byte vectors starting on 64-byte
// boundaries: the kernels read them as aligned vectors.
template <class T>
void require_bpr_rows(const T* rows, int64_t stride, const char* name) {
    constexpr int64_t lanes = 64 / static_cast<int64_t>(sizeof(T));
    if (stride % lanes != 0 || stride == 0)
        throw py::value_error(std::string(name) + ": expected 2-D rows padded to a multiple of " +
                              std::to_string(lanes) + " elements");
    if (reinterpret_cast<std::uintptr_t>(rows) % 64 != 0)
        throw py::value_error(std::string(name) + ": rows must start on 64-byte boundaries");
}

void require_bpr_positives(const fastrec::BprPositives& pos, int64_t n_items) {
    const std::string problem = fastrec::bpr_check_positives(pos, n_items);
    if (!problem.empty()) throw py::value_error(problem);
}

template <class T>
void bpr_samples(FASTREC_PARAMS(FASTREC_BPR_SAMPLES_FIELDS)) {
    fastrec::BprSamplesArgs<T> a{};
    FASTREC_UNPACK(FASTREC_BPR_SAMPLES_FIELDS, a)
    require_bpr_rows(a.P, a.stride, "P");
    require_bpr_rows(a.Q, a.stride, "Q");
    py::gil_scoped_release release;
    for (int64_t s = 0; s < a.n; ++s) {
        if (a.users[s] < 0 || a.users[s] >= a.n_users) throw py::value_error("users: index out of range");
        if (a.items[s] < 0 || a.items[s] >= a.n_items) throw py::value_error("items: index out of range");
        if (a.negatives[s] < -1 || a.negatives[s] >= a.n_items)
            throw py::value_error("negatives: index out of range");
        if (a.negatives[s] == a.items[s]) throw py::value_error("negatives: equal to the positive item");
    }
    FASTREC_DISPATCH(bpr_samples<T>(a));
}

template <class T>
void bpr_epoch(FASTREC_PARAMS(FASTREC_BPR_EPOCH_FIELDS)) {
    fastrec::BprEpochArgs<T> a{};
    FASTREC_UNPACK(FASTREC_BPR_EPOCH_FIELDS, a)
    require_bpr_rows(a.P, a.stride, "P");
    require_bpr_rows(a.Q, a.stride, "Q");
    if (a.n_items > (int64_t(1) << 31)) throw py::value_error("Q: more items than int32 indices hold");
    py::gil_scoped_release release;
    require_bpr_positives(a.pos, a.n_items);
    FASTREC_DISPATCH(bpr_epoch<T>(a));
}

void bpr_draw(FASTREC_PARAMS(FASTREC_BPR_DRAW_FIELDS)) {
    fastrec::BprDrawArgs a{};
    FASTREC_UNPACK(FASTREC_BPR_DRAW_FIELDS, a)
    if (a.n_items > (int64_t(1) << 31)) throw py::value_error("n_items: more items than int32 indices hold");
    py::gil_scoped_release release;
    require_bpr_positives(a.pos, a.n_items);
    fastrec::bpr_draw(a);
}

template <class T>
void def_bpr(py::module_& m) {
    m.def("bpr_samples", &bpr_samples<T>, FASTREC_PYARGS(FASTREC_BPR_SAMPLES_FIELDS));
    m.def("bpr_epoch", &bpr_epoch<T>, FASTREC_PYARGS(FASTREC_BPR_EPOCH_FIELDS));
}

}  // namespace

FASTREC_BINDINGS(bpr) {
    def_bpr<float>(m);
    def_bpr<double>(m);
    m.def("bpr_draw", &bpr_draw, FASTREC_PYARGS(FASTREC_BPR_DRAW_FIELDS));
}
