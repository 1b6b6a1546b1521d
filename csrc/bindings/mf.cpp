// Binding for csrc/include/fastrec/mf.hpp.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "fastrec/mf.hpp"

#include "fields.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

// Factor matrices must have rows of whole 64-byte vectors starting on 64-byte
// boundaries: the kernel reads them as aligned vectors.
template <class T>
void require_factor_rows(const T* rows, int64_t stride, const char* name) {
    constexpr int64_t lanes = 64 / static_cast<int64_t>(sizeof(T));
    if (stride % lanes != 0 || stride == 0)
        throw py::value_error(std::string(name) + ": expected 2-D rows padded to a multiple of " +
                              std::to_string(lanes) + " elements");
    if (reinterpret_cast<std::uintptr_t>(rows) % 64 != 0)
        throw py::value_error(std::string(name) + ": rows must start on 64-byte boundaries");
}

template <class I>
void require_indices(const I* idx, int64_t n, int64_t bound, const char* name) {
    bool bad = false;
    for (int64_t t = 0; t < n; ++t) bad |= (idx[t] < 0) | (idx[t] >= bound);
    if (bad) throw py::value_error(std::string(name) + ": index out of range");
}

template <class T>
void sgd_mf_epoch(FASTREC_PARAMS(FASTREC_SGD_MF_EPOCH_FIELDS)) {
    fastrec::SgdMfArgs<T> a{};
    FASTREC_UNPACK(FASTREC_SGD_MF_EPOCH_FIELDS, a)
    require_factor_rows(a.P, a.stride, "P");
    require_factor_rows(a.Q, a.stride, "Q");
    const int64_t side = fastrec::block_grid_side(a.n_blocks);
    if (a.n_blocks < 1 || side * side != a.n_blocks)
        throw py::value_error("block_ptr: expected side * side + 1 offsets (a square grid of blocks)");
    const int64_t* bp = a.block_ptr;
    if (bp[0] != 0 || bp[a.n_blocks] != a.nnz) throw py::value_error("block_ptr must run from 0 to nnz");
    for (int64_t b = 0; b < a.n_blocks; ++b)
        if (bp[b + 1] < bp[b] || bp[b + 1] - bp[b] >= (int64_t(1) << 32))
            throw py::value_error("block_ptr must be non-decreasing, blocks below 2^32 ratings");
    for (int64_t s = 0; s < a.n_strata * a.width; ++s)
        if (a.schedule[s] < -1 || a.schedule[s] >= a.n_blocks)
            throw py::value_error("schedule: block id out of range");
    py::gil_scoped_release release;
    require_indices(a.users, a.nnz, a.n_users, "users");
    require_indices(a.items, a.nnz, a.n_items, "items");
    FASTREC_DISPATCH(sgd_mf_epoch<T>(a));
}

template <class T>
void group_by_block(FASTREC_PARAMS(FASTREC_GROUP_BY_BLOCK_FIELDS)) {
    fastrec::GroupByBlockArgs<T> a{};
    FASTREC_UNPACK(FASTREC_GROUP_BY_BLOCK_FIELDS, a)
    if (a.n_blocks < 1) throw py::value_error("block_ptr: expected n_blocks + 1 >= 2 entries");
    py::gil_scoped_release release;
    if (a.order) require_indices(a.order, a.nnz, a.nnz, "order");
    require_indices(a.users, a.nnz, a.n_users, "users");
    require_indices(a.items, a.nnz, a.n_items, "items");
    // every block id in range: row keys in [0, n_blocks) step side, column keys below side
    int64_t max_user_block = 0, max_item_block = 0;
    bool negative = false;
    for (int64_t u = 0; u < a.n_users; ++u) {
        max_user_block = std::max(max_user_block, a.user_block[u]);
        negative |= a.user_block[u] < 0;
    }
    for (int64_t i = 0; i < a.n_items; ++i) {
        max_item_block = std::max(max_item_block, a.item_block[i]);
        negative |= a.item_block[i] < 0;
    }
    if (negative || max_user_block + max_item_block >= a.n_blocks)
        throw py::value_error("user_block + item_block: block id out of range");
    fastrec::group_by_block<T>(a);
}

template <class T>
void mf_predict(FASTREC_PARAMS(FASTREC_MF_PREDICT_FIELDS)) {
    fastrec::MfPredictArgs<T> a{};
    FASTREC_UNPACK(FASTREC_MF_PREDICT_FIELDS, a)
    require_factor_rows(a.P, a.stride, "P");
    require_factor_rows(a.Q, a.stride, "Q");
    py::gil_scoped_release release;
    // -1 marks an unknown id; anything else must be a valid row.
    for (int64_t t = 0; t < a.n; ++t)
        if (a.users[t] < -1 || a.users[t] >= a.n_users || a.items[t] < -1 || a.items[t] >= a.n_items)
            throw std::out_of_range("mf_predict: index out of range");
    FASTREC_DISPATCH(mf_predict<T>(a));
}

template <class T>
void def_mf(py::module_& m) {
    m.def("sgd_mf_epoch", &sgd_mf_epoch<T>, FASTREC_PYARGS(FASTREC_SGD_MF_EPOCH_FIELDS));
    m.def("group_by_block", &group_by_block<T>, FASTREC_PYARGS(FASTREC_GROUP_BY_BLOCK_FIELDS));
    m.def("mf_predict", &mf_predict<T>, FASTREC_PYARGS(FASTREC_MF_PREDICT_FIELDS));
}

}  // namespace

FASTREC_BINDINGS(mf) {
    def_mf<float>(m);
    def_mf<double>(m);
}
