// Binding for csrc/include/fastrec/mf.hpp.
#include <cstdint>
#include <string>

#include "arrays.hpp"
#include "fastrec/mf.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

// Factor matrices must have rows of whole 64-byte vectors starting on 64-byte
// boundaries: the kernel reads them as aligned vectors.
template <class T>
void require_factor_rows(const carray<T>& a, const char* name) {
    constexpr int64_t lanes = 64 / static_cast<int64_t>(sizeof(T));
    if (a.ndim() != 2 || a.shape(1) % lanes != 0 || a.shape(1) == 0)
        throw py::value_error(std::string(name) + ": expected 2-D rows padded to a multiple of " +
                              std::to_string(lanes) + " elements");
    if (reinterpret_cast<std::uintptr_t>(a.data()) % 64 != 0)
        throw py::value_error(std::string(name) + ": rows must start on 64-byte boundaries");
}

// The factors and biases of one model: aligned rows of one length, one bias per row.
template <class T>
void require_model(const carray<T>& P, const carray<T>& Q, const carray<T>& bu, const carray<T>& bi) {
    require_factor_rows(P, "P");
    require_factor_rows(Q, "Q");
    if (P.shape(1) != Q.shape(1)) throw py::value_error("P and Q must have the same row length");
    require_length(bu, P.shape(0), "bu");
    require_length(bi, Q.shape(0), "bi");
}

template <class I>
void require_indices(const I* idx, int64_t n, int64_t bound, const char* name) {
    bool bad = false;
    for (int64_t t = 0; t < n; ++t) bad |= (idx[t] < 0) | (idx[t] >= bound);
    if (bad) throw py::value_error(std::string(name) + ": index out of range");
}

template <class T>
void sgd_mf_epoch(carray<int32_t>& users, carray<int32_t>& items, carray<T>& ratings,
                  const carray<int64_t>& block_ptr, const carray<int64_t>& schedule, carray<T>& P,
                  carray<T>& Q, carray<T>& bu, carray<T>& bi, int64_t n_factors, double mu,
                  double lr, double reg, double lr_bias, double reg_bias, bool biased,
                  bool non_negative, bool hogwild, int64_t shuffle_seed, bool shuffle_within_runs,
                  carray<double>& out_block_sse,
                  int n_threads) {
    const int64_t nnz = users.ndim() == 1 ? users.shape(0) : -1;
    require_length(users, nnz, "users");
    require_length(items, nnz, "items");
    require_length(ratings, nnz, "ratings");
    require_model(P, Q, bu, bi);
    if (n_factors < 1 || n_factors > P.shape(1))
        throw py::value_error("n_factors: expected 1 <= n_factors <= the row length of P, got " +
                              std::to_string(n_factors));
    if (block_ptr.ndim() != 1 || block_ptr.shape(0) < 2)
        throw py::value_error("block_ptr: expected a 1-D array of at least 2 offsets");
    const int64_t n_blocks = block_ptr.shape(0) - 1;
    const int64_t side = fastrec::block_grid_side(n_blocks);
    if (side * side != n_blocks)
        throw py::value_error("block_ptr: expected side * side + 1 offsets (a square grid of blocks)");
    const int64_t* bp = block_ptr.data();
    if (bp[0] != 0 || bp[n_blocks] != nnz) throw py::value_error("block_ptr must run from 0 to nnz");
    for (int64_t b = 0; b < n_blocks; ++b)
        if (bp[b + 1] < bp[b] || bp[b + 1] - bp[b] >= (int64_t(1) << 32))
            throw py::value_error("block_ptr must be non-decreasing, blocks below 2^32 ratings");
    if (schedule.ndim() != 2) throw py::value_error("schedule: expected a 2-D array");
    const int64_t n_slots = schedule.shape(0) * schedule.shape(1);
    for (int64_t s = 0; s < n_slots; ++s)
        if (schedule.data()[s] < -1 || schedule.data()[s] >= n_blocks)
            throw py::value_error("schedule: block id out of range");
    require_length(out_block_sse, n_blocks, "out_block_sse");

    fastrec::SgdMfArgs<T> a;
    a.users = users.data();
    a.items = items.mutable_data();
    a.ratings = ratings.mutable_data();
    a.block_ptr = bp;
    a.n_blocks = n_blocks;
    a.schedule = schedule.data();
    a.n_strata = schedule.shape(0);
    a.width = schedule.shape(1);
    a.P = P.mutable_data();
    a.Q = Q.mutable_data();
    a.bu = bu.mutable_data();
    a.bi = bi.mutable_data();
    a.n_users = P.shape(0);
    a.n_items = Q.shape(0);
    a.stride = P.shape(1);
    a.n_factors = n_factors;
    a.mu = mu;
    a.lr = lr;
    a.reg = reg;
    a.lr_bias = lr_bias;
    a.reg_bias = reg_bias;
    a.biased = biased;
    a.non_negative = non_negative;
    a.hogwild = hogwild;
    a.shuffle_seed = shuffle_seed;
    a.shuffle_within_runs = shuffle_within_runs;
    a.out_block_sse = out_block_sse.mutable_data();
    a.n_threads = std::max(1, n_threads);
    py::gil_scoped_release release;
    require_indices(a.users, nnz, P.shape(0), "users");
    require_indices(a.items, nnz, Q.shape(0), "items");
    FASTREC_DISPATCH(sgd_mf_epoch<T>(a));
}

template <class T>
void group_by_block(const carray<int32_t>& users, const carray<int32_t>& items, const carray<T>& ratings,
                    const carray<int64_t>& order, const carray<int64_t>& user_block,
                    const carray<int64_t>& item_block, const carray<int32_t>& user_row,
                    const carray<int32_t>& item_row, carray<int32_t>& out_users, carray<int32_t>& out_items,
                    carray<T>& out_ratings, carray<int64_t>& block_ptr) {
    const int64_t nnz = users.ndim() == 1 ? users.shape(0) : -1;
    require_length(users, nnz, "users");
    require_length(items, nnz, "items");
    require_length(ratings, nnz, "ratings");
    const bool ordered = order.ndim() == 1 && order.shape(0) > 0;
    if (ordered) require_length(order, nnz, "order");
    const int64_t n_users = user_block.ndim() == 1 ? user_block.shape(0) : -1;
    const int64_t n_items = item_block.ndim() == 1 ? item_block.shape(0) : -1;
    require_length(user_block, n_users, "user_block");
    require_length(item_block, n_items, "item_block");
    require_length(user_row, n_users, "user_row");
    require_length(item_row, n_items, "item_row");
    require_length(out_users, nnz, "out_users");
    require_length(out_items, nnz, "out_items");
    require_length(out_ratings, nnz, "out_ratings");
    const int64_t n_blocks = block_ptr.ndim() == 1 ? block_ptr.shape(0) - 1 : -1;
    if (n_blocks < 1) throw py::value_error("block_ptr: expected n_blocks + 1 >= 2 entries");
    fastrec::GroupByBlockArgs<T> a;
    a.users = users.data();
    a.items = items.data();
    a.ratings = ratings.data();
    a.order = ordered ? order.data() : nullptr;
    a.nnz = nnz;
    a.user_block = user_block.data();
    a.item_block = item_block.data();
    a.user_row = user_row.data();
    a.item_row = item_row.data();
    a.n_blocks = n_blocks;
    a.out_users = out_users.mutable_data();
    a.out_items = out_items.mutable_data();
    a.out_ratings = out_ratings.mutable_data();
    a.block_ptr = block_ptr.mutable_data();
    py::gil_scoped_release release;
    if (a.order) require_indices(a.order, nnz, nnz, "order");
    require_indices(a.users, nnz, n_users, "users");
    require_indices(a.items, nnz, n_items, "items");
    // every block id in range: row keys in [0, n_blocks) step side, column keys below side
    int64_t max_user_block = 0, max_item_block = 0;
    bool negative = false;
    for (int64_t u = 0; u < n_users; ++u) {
        max_user_block = std::max(max_user_block, a.user_block[u]);
        negative |= a.user_block[u] < 0;
    }
    for (int64_t i = 0; i < n_items; ++i) {
        max_item_block = std::max(max_item_block, a.item_block[i]);
        negative |= a.item_block[i] < 0;
    }
    if (negative || max_user_block + max_item_block >= n_blocks)
        throw py::value_error("user_block + item_block: block id out of range");
    fastrec::group_by_block<T>(a);
}

template <class T>
void mf_predict(const carray<T>& P, const carray<T>& Q, const carray<T>& bu, const carray<T>& bi,
                double mu, bool biased, const carray<int32_t>& users, const carray<int32_t>& items,
                carray<T>& out, int n_threads) {
    require_model(P, Q, bu, bi);
    const int64_t n = users.ndim() == 1 ? users.shape(0) : -1;
    require_length(users, n, "users");
    require_length(items, n, "items");
    require_length(out, n, "out");
    fastrec::MfPredictArgs<T> a;
    a.P = P.data();
    a.Q = Q.data();
    a.bu = bu.data();
    a.bi = bi.data();
    a.stride = P.shape(1);
    a.mu = mu;
    a.biased = biased;
    a.users = users.data();
    a.items = items.data();
    a.n = n;
    a.out = out.mutable_data();
    a.n_threads = std::max(1, n_threads);
    py::gil_scoped_release release;
    // -1 marks an unknown id; anything else must be a valid row.
    for (int64_t t = 0; t < n; ++t)
        if (a.users[t] < -1 || a.users[t] >= P.shape(0) || a.items[t] < -1 || a.items[t] >= Q.shape(0))
            throw std::out_of_range("mf_predict: index out of range");
    FASTREC_DISPATCH(mf_predict<T>(a));
}

template <class T>
void def_mf(py::module_& m) {
    m.def("sgd_mf_epoch", &sgd_mf_epoch<T>, py::arg("users").noconvert(), py::arg("items").noconvert(),
          py::arg("ratings").noconvert(), py::arg("block_ptr"), py::arg("schedule"),
          py::arg("P").noconvert(), py::arg("Q").noconvert(), py::arg("bu").noconvert(),
          py::arg("bi").noconvert(), py::arg("n_factors"), py::arg("mu"), py::arg("lr"), py::arg("reg"),
          py::arg("lr_bias"), py::arg("reg_bias"), py::arg("biased"), py::arg("non_negative"),
          py::arg("hogwild"), py::arg("shuffle_seed"), py::arg("shuffle_within_runs"),
          py::arg("out_block_sse").noconvert(), py::arg("n_threads"));
    m.def("group_by_block", &group_by_block<T>, py::arg("users").noconvert(), py::arg("items").noconvert(),
          py::arg("ratings").noconvert(), py::arg("order").noconvert(), py::arg("user_block").noconvert(),
          py::arg("item_block").noconvert(), py::arg("user_row").noconvert(), py::arg("item_row").noconvert(),
          py::arg("out_users").noconvert(), py::arg("out_items").noconvert(),
          py::arg("out_ratings").noconvert(), py::arg("block_ptr").noconvert());
    m.def("mf_predict", &mf_predict<T>, py::arg("P").noconvert(), py::arg("Q").noconvert(),
          py::arg("bu").noconvert(), py::arg("bi").noconvert(), py::arg("mu"), py::arg("biased"),
          py::arg("users"), py::arg("items"), py::arg("out").noconvert(), py::arg("n_threads"));
}

}  // namespace

FASTREC_BINDINGS(mf) {
    def_mf<float>(m);
    def_mf<double>(m);
}
