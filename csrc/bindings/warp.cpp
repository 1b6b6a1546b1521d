// Binding for csrc/include/fastrec/warp.hpp.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "fastrec/warp.hpp"

#include "fields.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

// Factor rows of whole 64-byte vectors starting on 64-byte boundaries: the kernel
// reads them as aligned vectors.
template <class T>
void require_rows(const T* rows, int64_t stride, const char* name) {
    constexpr int64_t lanes = 64 / static_cast<int64_t>(sizeof(T));
    if (stride % lanes != 0 || stride == 0)
        throw py::value_error(std::string(name) + ": expected 2-D rows padded to a multiple of " +
                              std::to_string(lanes) + " elements");
    if (reinterpret_cast<std::uintptr_t>(rows) % 64 != 0)
        throw py::value_error(std::string(name) + ": rows must start on 64-byte boundaries");
}

template <class I>
bool all_in_range(const I* idx, int64_t n, int64_t bound) {
    bool bad = false;
    for (int64_t t = 0; t < n; ++t) bad |= (idx[t] < 0) | (idx[t] >= bound);
    return !bad;
}

template <class T>
void warp_epoch(FASTREC_PARAMS(FASTREC_WARP_EPOCH_FIELDS)) {
    fastrec::WarpEpochArgs<T> a{};
    FASTREC_UNPACK(FASTREC_WARP_EPOCH_FIELDS, a)
    require_rows(a.P, a.stride, "P");
    require_rows(a.Q, a.stride, "Q");
    if (a.adagrad) {
        require_rows(a.P_acc, a.stride, "P_acc");
        require_rows(a.Q_acc, a.stride, "Q_acc");
    }
    if (a.n_items < 1) throw py::value_error("Q: expected at least one item row");
    py::gil_scoped_release release;
    const int64_t* ip = a.indptr;
    bool ok = ip[0] == 0 && ip[a.n_users] == a.nnz;
    for (int64_t u = 0; ok && u < a.n_users; ++u) ok = ip[u] <= ip[u + 1];
    if (!ok) throw std::invalid_argument("indptr must be non-decreasing from 0 to len(indices)");
    if (!all_in_range(a.indices, a.nnz, a.n_items)) throw std::invalid_argument("indices: item out of range");
    // every entry's user owns the entry, and rows are sorted: the binary search relies on both
    bool rows_ok = true;
    for (int64_t u = 0; u < a.n_users; ++u)
        for (int64_t t = ip[u]; t < ip[u + 1]; ++t)
            rows_ok &= (a.users[t] == u) & (t == ip[u] || a.indices[t - 1] < a.indices[t]);
    if (!rows_ok)
        throw std::invalid_argument("users / indices: users[t] must be the row of entry t, rows sorted and distinct");
    if (!all_in_range(a.order, a.n_visits, a.nnz)) throw std::invalid_argument("order: entry out of range");
    if (!all_in_range(a.draws, a.n_draws, a.n_items)) throw std::invalid_argument("draws: item out of range");
    FASTREC_DISPATCH(warp_epoch<T>(a));
}

template <class T>
void warp_epoch_features(FASTREC_PARAMS(FASTREC_WARP_EPOCH_FEATURES_FIELDS)) {
    fastrec::WarpEpochFeaturesArgs<T> a{};
    FASTREC_UNPACK(FASTREC_WARP_EPOCH_FEATURES_FIELDS, a)
    require_rows(a.P, a.stride, "P");
    require_rows(a.E, a.stride, "E");
    if (a.adagrad) {
        require_rows(a.P_acc, a.stride, "P_acc");
        require_rows(a.E_acc, a.stride, "E_acc");
    }
    if (a.n_items < 1) throw py::value_error("feature_indptr: expected at least one item");
    py::gil_scoped_release release;
    const int64_t* ip = a.indptr;
    bool ok = ip[0] == 0 && ip[a.n_users] == a.nnz;
    for (int64_t u = 0; ok && u < a.n_users; ++u) ok = ip[u] <= ip[u + 1];
    if (!ok) throw std::invalid_argument("indptr must be non-decreasing from 0 to len(indices)");
    const int64_t* fp = a.feature_indptr;
    ok = fp[0] == 0 && fp[a.n_items] == a.n_entries;
    for (int64_t x = 0; ok && x < a.n_items; ++x) ok = fp[x] <= fp[x + 1];
    if (!ok) throw std::invalid_argument("feature_indptr must be non-decreasing from 0 to len(feature_indices)");
    if (!all_in_range(a.feature_indices, a.n_entries, a.n_features))
        throw std::invalid_argument("feature_indices: feature out of range");
    if (!all_in_range(a.indices, a.nnz, a.n_items)) throw std::invalid_argument("indices: item out of range");
    bool rows_ok = true;
    for (int64_t u = 0; u < a.n_users; ++u)
        for (int64_t t = ip[u]; t < ip[u + 1]; ++t)
            rows_ok &= (a.users[t] == u) & (t == ip[u] || a.indices[t - 1] < a.indices[t]);
    if (!rows_ok)
        throw std::invalid_argument("users / indices: users[t] must be the row of entry t, rows sorted and distinct");
    if (!all_in_range(a.order, a.n_visits, a.nnz)) throw std::invalid_argument("order: entry out of range");
    if (!all_in_range(a.draws, a.n_draws, a.n_items)) throw std::invalid_argument("draws: item out of range");
    FASTREC_DISPATCH(warp_epoch_features<T>(a));
}

template <class T>
void def_warp(py::module_& m) {
    m.def("warp_epoch", &warp_epoch<T>, FASTREC_PYARGS(FASTREC_WARP_EPOCH_FIELDS));
    m.def("warp_epoch_features", &warp_epoch_features<T>, FASTREC_PYARGS(FASTREC_WARP_EPOCH_FEATURES_FIELDS));
}

}  // namespace

FASTREC_BINDINGS(warp) {
    def_warp<float>(m);
    def_warp<double>(m);
}
