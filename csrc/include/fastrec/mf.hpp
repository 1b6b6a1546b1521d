// Biased matrix factorization of explicit ratings by stochastic gradient descent.
//
//   r_hat(u, i) = mu + b_u + b_i + <p_u, q_i>
//
// One call runs one epoch.  The ratings arrive grouped into the blocks of a
// side x side grid of user groups x item groups: block b holds the ratings of
// row group b / side and column group b % side (n_blocks = side * side).  The
// caller's schedule lists the epoch as a sequence of strata; the blocks of one
// stratum share no row group and no column group, so they touch disjoint user
// and item rows and run in parallel without locks (the conflict-free
// scheduling of LIBMF / DSGD).
//
// The strata are not separated by barriers.  A block waits only for the block
// before it in its row group and the one before it in its column group, so a
// thread that finishes early (or a core that the machine takes away for a
// while) does not hold up the other threads: they run ahead into later strata.
// Each user row and each item row still sees its blocks in the order the
// schedule fixes, so the model does not depend on which thread ran which
// block, or when: same inputs and schedule, bit-identical model.
//
// Within a block the caller stores the ratings grouped by user: each user's
// ratings form one contiguous run.  Each epoch a block's visit order is drawn by
// a counter-based generator (splitmix64) keyed by (shuffle_seed, block).  When
// the caller asks (shuffle_within_runs: the model does on the first epoch of a
// training call), every run is first shuffled in place (Fisher-Yates); later
// epochs keep that stored order.  Then the order of the runs is drawn in
// windows of kRunWindow runs that are neighbours in storage: the windows in
// random order, and the runs of each window in random order.  Neighbouring runs
// have neighbouring user rows and rating entries, so a window keeps the
// accesses within a few pages, where the hardware prefetchers and the TLB work
// well.  With the look-ahead prefetch of run_block_lanes, epochs on the M and
// L benchmark data run 5-7% faster than with one random order over all runs.
// kVisitLanes lanes then walk the runs in that order (see run_block_lanes), so a
// user's factor row stays in L1 through its run, as in LIBMF's user-sorted
// blocks, while the order still changes every epoch.  fastrec/mf/_numba.py and
// _reference.py implement the same generator and lanes, so all backends visit
// the same order.  A negative shuffle_seed keeps the stored order of the runs
// and of the ratings within them, which lets a caller impose any order.
//
// Factor rows are `stride` elements long, stride a multiple of the 64-byte SIMD
// width, and rows start 64-byte aligned.  The first n_factors lanes hold the
// factors; the padding lanes after them hold zeros on entry and on return, so
// the kernel works on whole vectors with no remainder loop.
//
// A biased model whose rows have two or more padding lanes carries its biases
// in the last two lanes during the epoch: p_u ends in (b_u, 1) and q_i in
// (1, b_i).  The dot product over whole vectors then adds b_u + b_i, and the
// vector update of the last vector, with per-lane rates, updates the biases
// too: no scalar loads, updates and stores of b_u and b_i per rating (about
// 10% of the epoch).  Rows without the room (n_factors a multiple of 16 for
// float, say) take the biases from bu and bi as scalars.  Both give the same
// model up to rounding.
//
// Hogwild mode ignores the strata: every block runs as soon as a thread is
// free, and updates to shared rows race without locks.  It is faster when the
// grid is unbalanced but not deterministic.
#pragma once

#include <condition_variable>
#include <mutex>

#include "fastrec/prelude.hpp"

namespace fastrec {

template <class T>
struct SgdMfArgs {
    const int32_t* users;         // IN    (nnz) inner user of every rating, grouped by block, then by user
    int32_t* items;               // INOUT (nnz) inner item of every rating
    T* ratings;                   // INOUT (nnz) rating values (shuffled with items, within each run)
    int64_t nnz;                  // IN    ratings, block_ptr[n_blocks]
    const int64_t* block_ptr;     // IN    (n_blocks + 1) ratings of block b: [block_ptr[b], block_ptr[b+1])
    int64_t n_blocks;             // IN
    const int64_t* schedule;      // IN    (n_strata x width) block ids, -1 for an empty slot
    int64_t n_strata;             // IN
    int64_t width;                // IN    slots per stratum
    T* P;                         // INOUT (n_users x stride) user factors, 64-byte aligned rows
    T* Q;                         // INOUT (n_items x stride) item factors, 64-byte aligned rows
    T* bu;                        // INOUT (n_users) user biases
    T* bi;                        // INOUT (n_items) item biases
    int64_t n_users, n_items;     // IN    rows of P and Q
    int64_t stride;               // IN    row length, a multiple of 64 / sizeof(T)
    int64_t n_factors;            // IN    factors per row, <= stride; the rest is padding
    double mu;                    // IN    global mean (0 for an unbiased model)
    double lr, reg;               // IN    learning rate and L2 penalty of the factors
    double lr_bias, reg_bias;     // IN    the same for the biases
    bool biased;                  // IN    learn b_u and b_i
    bool non_negative;            // IN    project the factors onto >= 0 after each update
    bool hogwild;                 // IN    ignore the strata (racy, not deterministic)
    int64_t shuffle_seed;         // IN    >= 0: draw each block's run order; < 0: as stored
    bool shuffle_within_runs;     // IN    with shuffle_seed >= 0: first shuffle every run in place
    double* out_block_sse;        // OUT   (n_blocks) sum of squared errors met during the epoch
    int n_threads;                // IN    OpenMP threads (>= 1)
};

// The Python-visible arguments of sgd_mf_epoch, in call order, with their checks (see
// csrc/bindings/fields.hpp); the binding also checks the grid, the schedule, the factor
// rows' padding and alignment, and the indices.
#define FASTREC_SGD_MF_EPOCH_FIELDS(F, A)                                   \
    F(users, int32_t, IN_EXACT, A.users, (bind(A.nnz)))                     \
    F(items, int32_t, INOUT, A.items, (A.nnz))                              \
    F(ratings, T, INOUT, A.ratings, (A.nnz))                                \
    F(block_ptr, int64_t, IN, A.block_ptr, (bind_indptr(A.n_blocks)))       \
    F(schedule, int64_t, IN, A.schedule, (bind(A.n_strata), bind(A.width))) \
    F(P, T, INOUT, A.P, (bind(A.n_users), bind(A.stride)))                  \
    F(Q, T, INOUT, A.Q, (bind(A.n_items), A.stride))                        \
    F(bu, T, INOUT, A.bu, (A.n_users))                                      \
    F(bi, T, INOUT, A.bi, (A.n_items))                                      \
    F(n_factors, int64_t, VALUE, A.n_factors, (in_range(1, A.stride)))      \
    F(mu, double, VALUE, A.mu, ())                                          \
    F(lr, double, VALUE, A.lr, ())                                          \
    F(reg, double, VALUE, A.reg, ())                                        \
    F(lr_bias, double, VALUE, A.lr_bias, ())                                \
    F(reg_bias, double, VALUE, A.reg_bias, ())                              \
    F(biased, bool, VALUE, A.biased, ())                                    \
    F(non_negative, bool, VALUE, A.non_negative, ())                        \
    F(hogwild, bool, VALUE, A.hogwild, ())                                  \
    F(shuffle_seed, int64_t, VALUE, A.shuffle_seed, ())                     \
    F(shuffle_within_runs, bool, VALUE, A.shuffle_within_runs, ())          \
    F(out_block_sse, double, OUT, A.out_block_sse, (A.n_blocks))            \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))

// Scores r_hat for (user, item) pairs; a negative index means "unknown" and drops
// the terms of that side (the bias fallbacks documented in fastrec.mf).
template <class T>
struct MfPredictArgs {
    const T* P;            // IN  (n_users x stride)
    const T* Q;            // IN  (n_items x stride)
    const T* bu;           // IN  (n_users)
    const T* bi;           // IN  (n_items)
    int64_t n_users;       // IN  rows of P
    int64_t n_items;       // IN  rows of Q
    int64_t stride;        // IN
    double mu;             // IN
    bool biased;           // IN
    const int32_t* users;  // IN  (n) inner user or -1
    const int32_t* items;  // IN  (n) inner item or -1
    int64_t n;             // IN
    T* out;                // OUT (n)
    int n_threads;         // IN
};

// The Python-visible arguments of mf_predict (see csrc/bindings/fields.hpp); the
// binding also checks the factor rows and that every index is -1 or a row.
#define FASTREC_MF_PREDICT_FIELDS(F, A)                       \
    F(P, T, IN_EXACT, A.P, (bind(A.n_users), bind(A.stride))) \
    F(Q, T, IN_EXACT, A.Q, (bind(A.n_items), A.stride))       \
    F(bu, T, IN_EXACT, A.bu, (A.n_users))                     \
    F(bi, T, IN_EXACT, A.bi, (A.n_items))                     \
    F(mu, double, VALUE, A.mu, ())                            \
    F(biased, bool, VALUE, A.biased, ())                      \
    F(users, int32_t, IN, A.users, (bind(A.n)))               \
    F(items, int32_t, IN, A.items, (A.n))                     \
    F(out, T, OUT, A.out, (A.n))                              \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))

// Arranges ratings for sgd_mf_epoch: a stable counting sort by block, which
// also renumbers users and items into their training rows.  Rating t (taken in
// the caller's `order`, so sorted by user when order sorts by user) lands in
// block user_block[users[t]] + item_block[items[t]].
template <class T>
struct GroupByBlockArgs {
    const int32_t* users;         // IN  (nnz) inner user of every rating
    const int32_t* items;         // IN  (nnz) inner item
    const T* ratings;             // IN  (nnz)
    const int64_t* order;         // IN  (nnz) visit ratings in this order, or nullptr for 0..nnz-1
    int64_t nnz;                  // IN
    const int64_t* user_block;    // IN  (n_users) row group of every user x side
    const int64_t* item_block;    // IN  (n_items) column group of every item
    const int32_t* user_row;      // IN  (n_users) training row of every user
    const int32_t* item_row;      // IN  (n_items) training row of every item
    int64_t n_users, n_items;     // IN  entries of user_block / user_row and item_block / item_row
    int64_t n_blocks;             // IN
    int32_t* out_users;           // OUT (nnz) training rows, grouped by block
    int32_t* out_items;           // OUT (nnz)
    T* out_ratings;               // OUT (nnz)
    int64_t* block_ptr;           // OUT (n_blocks + 1) block offsets
};

// The Python-visible arguments of group_by_block (see csrc/bindings/fields.hpp); the
// binding also checks every index and block id.  An empty order means 0..nnz-1.
#define FASTREC_GROUP_BY_BLOCK_FIELDS(F, A)                           \
    F(users, int32_t, IN_EXACT, A.users, (bind(A.nnz)))               \
    F(items, int32_t, IN_EXACT, A.items, (A.nnz))                     \
    F(ratings, T, IN_EXACT, A.ratings, (A.nnz))                       \
    F(order, int64_t, IN_EXACT, A.order, (optional(A.nnz)))           \
    F(user_block, int64_t, IN_EXACT, A.user_block, (bind(A.n_users))) \
    F(item_block, int64_t, IN_EXACT, A.item_block, (bind(A.n_items))) \
    F(user_row, int32_t, IN_EXACT, A.user_row, (A.n_users))           \
    F(item_row, int32_t, IN_EXACT, A.item_row, (A.n_items))           \
    F(out_users, int32_t, OUT, A.out_users, (A.nnz))                  \
    F(out_items, int32_t, OUT, A.out_items, (A.nnz))                  \
    F(out_ratings, T, OUT, A.out_ratings, (A.nnz))                    \
    F(block_ptr, int64_t, OUT, A.block_ptr, (bind_indptr(A.n_blocks)))

template <class T>
void group_by_block(const GroupByBlockArgs<T>& a) {
    auto rating_at = [&](int64_t k) { return a.order ? a.order[k] : k; };
    auto block_of = [&](int64_t t) { return a.user_block[a.users[t]] + a.item_block[a.items[t]]; };
    std::fill(a.block_ptr, a.block_ptr + a.n_blocks + 1, int64_t(0));
    for (int64_t k = 0; k < a.nnz; ++k) ++a.block_ptr[block_of(rating_at(k)) + 1];
    for (int64_t b = 0; b < a.n_blocks; ++b) a.block_ptr[b + 1] += a.block_ptr[b];
    std::vector<int64_t> cursor(a.block_ptr, a.block_ptr + a.n_blocks);
    for (int64_t k = 0; k < a.nnz; ++k) {
        const int64_t t = rating_at(k);
        const int64_t at = cursor[static_cast<size_t>(block_of(t))]++;
        a.out_users[at] = a.user_row[a.users[t]];
        a.out_items[at] = a.item_row[a.items[t]];
        a.out_ratings[at] = a.ratings[t];
    }
}

// Side of the square grid of n_blocks blocks; side * side != n_blocks when
// n_blocks is not a square.
inline int64_t block_grid_side(int64_t n_blocks) {
    int64_t side = 1;
    while (side * side < n_blocks) ++side;
    return side;
}

// True when the epoch carries the biases in the last two padding lanes of the
// rows (see the header comment).  Projected SGD keeps them as scalars: its
// projection onto >= 0 must not reach the biases.
template <class T>
inline bool biases_in_rows(const SgdMfArgs<T>& a) {
    return a.biased && !a.non_negative && a.stride - a.n_factors >= 2;
}

// The shuffle generator, shared by every backend (see the header comment).
namespace sgd_rng {
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

inline uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

inline uint64_t block_state(int64_t seed, int64_t block) {
    return mix(static_cast<uint64_t>(seed) + static_cast<uint64_t>(block + 1) * kGolden);
}
}  // namespace sgd_rng

}  // namespace fastrec

FASTREC_DECLARE_FOR_EACH_ISA(template <class T> void sgd_mf_epoch(const SgdMfArgs<T>& args);
                             template <class T> void mf_predict(const MfPredictArgs<T>& args);)

#ifdef FASTREC_ISA_NS
#include "fastrec/simd.hpp"

namespace fastrec {
namespace FASTREC_ISA_NS {
namespace sgd_detail {

// Integer vector with the lane count of vec64_t<T>, for shuffles.
template <class T>
struct LaneIndex;
template <>
struct LaneIndex<float> {
    typedef int32_t type __attribute__((vector_size(64)));
};
template <>
struct LaneIndex<double> {
    typedef int64_t type __attribute__((vector_size(64)));
};

// All lanes = x.  A shuffle with an all-zero index compiles to one vbroadcastss /
// vbroadcastsd; GCC 12 builds `V{} + x` or a lane loop as a chain of 16 masked
// inserts instead.
template <class T>
inline vec64_t<T> splat(T x) {
    vec64_t<T> v = {x};
    return __builtin_shuffle(v, typename LaneIndex<T>::type{});
}

// Every lane = the sum of v's lanes: a butterfly of in-register swaps, whose
// pairwise sums are the same in every lane, so the error of a rating comes out
// already broadcast for its update (no scalar round trip).
inline vec64_t<float> lane_sum(vec64_t<float> v) {
    v += __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    v += __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    v += __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
    return v;
}

inline vec64_t<double> lane_sum(vec64_t<double> v) {
    v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3);
    v += __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5);
    v += __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6);
    return v;
}

// <p, q> over n_vec whole vectors, in every lane; two accumulators halve the FMA
// dependency chain.
template <class T>
inline vec64_t<T> dot_lanes(const vec64_t<T>* __restrict p, const vec64_t<T>* __restrict q, int64_t n_vec) {
    vec64_t<T> acc0 = {}, acc1 = {};
    int64_t v = 0;
    for (; v + 1 < n_vec; v += 2) {
        acc0 += p[v] * q[v];
        acc1 += p[v + 1] * q[v + 1];
    }
    if (v < n_vec) acc0 += p[v] * q[v];
    return lane_sum(acc0 + acc1);
}

// Cache lines of one factor row that the next ratings will need.
template <class T>
inline void prefetch_row(const T* row, int64_t stride) {
    const char* bytes = reinterpret_cast<const char*>(row);
    const int64_t n_bytes = stride * static_cast<int64_t>(sizeof(T));
    for (int64_t off = 0; off < n_bytes; off += static_cast<int64_t>(kCacheLine))
        __builtin_prefetch(bytes + off, 1, 3);
}

// Every cache line of the bytes [begin, end).
inline void prefetch_span(const void* begin, const void* end) {
    const uintptr_t line = static_cast<uintptr_t>(kCacheLine);
    for (uintptr_t at = reinterpret_cast<uintptr_t>(begin) & ~(line - 1);
         at < reinterpret_cast<uintptr_t>(end); at += line)
        __builtin_prefetch(reinterpret_cast<const void*>(at), 0, 3);
}

// p <- p (1 - lr reg) + lr err q ;  q <- q (1 - lr reg) + lr err p_old
template <class T, bool kNonNegative>
inline void update_rows(vec64_t<T>* __restrict p, vec64_t<T>* __restrict q, vec64_t<T> step,
                        vec64_t<T> shrink, int64_t n_vec) {
    const vec64_t<T> zero = {};
    for (int64_t v = 0; v < n_vec; ++v) {
        const vec64_t<T> pv = p[v], qv = q[v];
        const vec64_t<T> np = pv * shrink + step * qv;
        const vec64_t<T> nq = qv * shrink + step * pv;
        if constexpr (kNonNegative) {
            p[v] = np > zero ? np : zero;
            q[v] = nq > zero ? nq : zero;
        } else {
            p[v] = np;
            q[v] = nq;
        }
    }
}

// How a kernel instance treats the biases: none (unbiased model), as scalars in
// bu and bi, or carried in the rows' last two lanes (biases_in_rows).
enum class Bias { none, scalar, in_rows };

// Per-lane shrink and rate of the last vector of p_u and q_i when it carries the
// biases: p_u ends in (b_u, 1), q_i in (1, b_i).  The factor lanes get the
// factors' shrink and rate, a bias lane the biases' ones, and a constant 1
// shrink 1 and rate 0, so it stays 1.
template <class T>
struct LastVectorRates {
    vec64_t<T> shrink_p, rate_p, shrink_q, rate_q;
};

template <class T>
LastVectorRates<T> last_vector_rates(const SgdMfArgs<T>& a) {
    constexpr int lanes = Vec64<T>::lanes;
    const T bias_shrink = T(1) - static_cast<T>(a.lr_bias * a.reg_bias);
    const T bias_rate = static_cast<T>(a.lr_bias);
    LastVectorRates<T> r;
    r.shrink_p = r.shrink_q = splat<T>(T(1) - static_cast<T>(a.lr * a.reg));
    r.rate_p = r.rate_q = splat<T>(static_cast<T>(a.lr));
    r.shrink_p[lanes - 2] = bias_shrink;
    r.rate_p[lanes - 2] = bias_rate;
    r.shrink_p[lanes - 1] = T(1);
    r.rate_p[lanes - 1] = T(0);
    r.shrink_q[lanes - 2] = T(1);
    r.rate_q[lanes - 2] = T(0);
    r.shrink_q[lanes - 1] = bias_shrink;
    r.rate_q[lanes - 1] = bias_rate;
    return r;
}

// update_rows for rows whose last vector carries the biases; e is the error of
// the rating in every lane, step = lr * e.
template <class T>
inline void update_rows_and_biases(vec64_t<T>* __restrict p, vec64_t<T>* __restrict q, vec64_t<T> e,
                                   vec64_t<T> step, vec64_t<T> shrink, const LastVectorRates<T>& last,
                                   int64_t n_vec) {
    update_rows<T, false>(p, q, step, shrink, n_vec - 1);
    const vec64_t<T> pv = p[n_vec - 1], qv = q[n_vec - 1];
    p[n_vec - 1] = pv * last.shrink_p + (e * last.rate_p) * qv;
    q[n_vec - 1] = qv * last.shrink_q + (e * last.rate_q) * pv;
}

// Writes b_u and b_i into the rows' last two lanes, with the constant 1 beside
// them (see LastVectorRates).
template <class T>
void move_biases_into_rows(const SgdMfArgs<T>& a) {
    const int64_t last = a.stride - 2;
    for (int64_t u = 0; u < a.n_users; ++u) {
        a.P[u * a.stride + last] = a.bu[u];
        a.P[u * a.stride + last + 1] = T(1);
    }
    for (int64_t i = 0; i < a.n_items; ++i) {
        a.Q[i * a.stride + last] = T(1);
        a.Q[i * a.stride + last + 1] = a.bi[i];
    }
}

// The inverse of move_biases_into_rows: biases back to bu and bi, zero padding.
template <class T>
void move_biases_out_of_rows(const SgdMfArgs<T>& a) {
    const int64_t last = a.stride - 2;
    for (int64_t u = 0; u < a.n_users; ++u) {
        a.bu[u] = a.P[u * a.stride + last];
        a.P[u * a.stride + last] = a.P[u * a.stride + last + 1] = T(0);
    }
    for (int64_t i = 0; i < a.n_items; ++i) {
        a.bi[i] = a.Q[i * a.stride + last + 1];
        a.Q[i * a.stride + last] = a.Q[i * a.stride + last + 1] = T(0);
    }
}

// Draws j uniformly from [0, i] (multiply-high of 32 random bits; runs and
// blocks hold < 2^32 ratings) and advances the generator.
inline int64_t draw_index(uint64_t& state, int64_t i) {
    state += sgd_rng::kGolden;
    const uint64_t z = sgd_rng::mix(state);
    return static_cast<int64_t>(((z >> 32) * static_cast<uint64_t>(i + 1)) >> 32);
}

// The runs of a block: maximal segments [starts[r], starts[r + 1]) of equal
// users[t].  The caller stores each block's ratings grouped by user, so a run
// holds all of one user's ratings in the block.
template <class T>
void find_runs(const SgdMfArgs<T>& a, int64_t begin, int64_t end, std::vector<int64_t>& starts) {
    starts.clear();
    for (int64_t t = begin; t < end; ++t)
        if (t == begin || a.users[t] != a.users[t - 1]) starts.push_back(t);
    starts.push_back(end);
}

// Runs per window of the run order (see the header comment).
constexpr int64_t kRunWindow = 16;

// Fisher-Yates shuffle of order[0, n).
inline void shuffle_indices(uint64_t& state, int64_t* order, int64_t n) {
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[draw_index(state, i)]);
}

// The order of n_runs runs: windows of kRunWindow neighbouring runs (the last
// one shorter), the windows in random order, then within each window, as it
// comes, its runs in random order.  window_order is scratch.
inline void draw_run_order(uint64_t& state, int64_t n_runs, std::vector<int64_t>& run_order,
                           std::vector<int64_t>& window_order) {
    run_order.resize(static_cast<size_t>(n_runs));
    const int64_t n_windows = (n_runs + kRunWindow - 1) / kRunWindow;
    window_order.resize(static_cast<size_t>(n_windows));
    for (int64_t w = 0; w < n_windows; ++w) window_order[w] = w;
    shuffle_indices(state, window_order.data(), n_windows);
    int64_t at = 0;
    for (const int64_t w : window_order) {
        const int64_t first = w * kRunWindow, n = std::min(kRunWindow, n_runs - first);
        for (int64_t r = 0; r < n; ++r) run_order[at + r] = first + r;
        shuffle_indices(state, run_order.data() + at, n);
        at += n;
    }
}

// The epoch's visit order of one block: Fisher-Yates shuffles every run in
// place (runs in storage order) when asked, then draws the order of the runs
// (draw_run_order), all from one splitmix64 stream keyed by (shuffle_seed, block).
// Shuffling within the runs every epoch took 8-9% of an M benchmark epoch;
// shuffled once per training call, the ratings give the same test RMSE on
// MovieLens 100K (0.9089 either way, u1..u5 and three seeds).
template <class T>
void shuffle_runs(const SgdMfArgs<T>& a, int64_t block, const std::vector<int64_t>& starts,
                  std::vector<int64_t>& run_order, std::vector<int64_t>& window_order) {
    const int64_t n_runs = static_cast<int64_t>(starts.size()) - 1;
    if (a.shuffle_seed < 0) {  // as stored
        run_order.resize(static_cast<size_t>(n_runs));
        for (int64_t r = 0; r < n_runs; ++r) run_order[r] = r;
        return;
    }
    uint64_t state = sgd_rng::block_state(a.shuffle_seed, block);
    if (a.shuffle_within_runs) {
        for (int64_t r = 0; r < n_runs; ++r) {
            int32_t* items = a.items + starts[r];
            T* ratings = a.ratings + starts[r];
            for (int64_t i = starts[r + 1] - starts[r] - 1; i > 0; --i) {
                const int64_t j = draw_index(state, i);
                std::swap(items[i], items[j]);
                std::swap(ratings[i], ratings[j]);
            }
        }
    }
    draw_run_order(state, n_runs, run_order, window_order);
}

// Lanes of the visit (see run_block_lanes); every backend uses the same count.
constexpr int kVisitLanes = 4;

// One user's run as a lane of the visit: the cursor t walks [t, end).
struct Lane {
    int64_t t = 0, end = 0;
    bool active() const { return t < end; }
};

// SGD over one block in its visit order.  kVisitLanes lanes walk the runs: a
// lane whose run is used up takes the next run of run_order (lanes in order),
// and every step visits the next rating of each active lane, lanes in order.
// A user's factor row stays in L1 through its run, and the lanes' dependency
// chains (dot product, lane sum, error, update) interleave: when the ratings of
// a step name distinct users and distinct items, they touch disjoint rows, so
// running them together gives exactly the sequential result.  Otherwise (rare)
// the step runs them one after the other.
//
// kVec > 0 fixes the row length at kVec vectors at compile time: the dot
// product and update loops then unroll completely and the lane loops keep
// their pointers in registers, about 13% faster than the run-time length.
template <class T, Bias kBias, bool kNonNegative, int kVec>
double run_block_lanes(const SgdMfArgs<T>& a, const std::vector<int64_t>& starts,
                       const std::vector<int64_t>& run_order) {
    using V = vec64_t<T>;
    constexpr int lanes = Vec64<T>::lanes;
    constexpr int L = kVisitLanes;
    // A new run's user row and its first item rows are prefetched when a lane
    // takes it; after that the item rows of a block stay in L2 (the grid is sized
    // for it), where per-step prefetches cost more than they save.  The user row
    // was already fetched kRunsAhead runs earlier (prefetch_run), but fetching it
    // again here is not wasted: dropping this second prefetch made M epochs 4%
    // slower (paired, 1 and 2 threads).
    constexpr int64_t kAhead = 4;
    // The runs come in random order, so neither their user rows nor their
    // entries in users / items / ratings are where the hardware prefetcher
    // looks: they are fetched kRunsAhead runs before a lane takes the run
    // (2-3% of the epoch on top of the windowed run order).
    constexpr int64_t kRunsAhead = 4;
    const int32_t* __restrict users = a.users;
    const int32_t* __restrict items = a.items;
    const T* __restrict ratings = a.ratings;
    T* const P = a.P;
    T* const Q = a.Q;
    T* const bu = a.bu;
    T* const bi = a.bi;
    const int64_t n_vec = kVec > 0 ? kVec : a.stride / lanes;
    const int64_t stride = n_vec * lanes;
    const T mu = static_cast<T>(a.mu);
    const T lr = static_cast<T>(a.lr), lr_b = static_cast<T>(a.lr_bias);
    const T reg_b = static_cast<T>(a.reg_bias);
    const V shrink = splat<T>(T(1) - static_cast<T>(a.lr * a.reg));
    const LastVectorRates<T> last = last_vector_rates(a);
    const int64_t n_runs = static_cast<int64_t>(run_order.size());
    int64_t next_run = 0;
    double sse = 0.0;

    auto prefetch_run = [&](int64_t r) {
        const int64_t begin = starts[r], end = starts[r + 1];
        prefetch_row(P + static_cast<int64_t>(users[begin]) * stride, stride);
        prefetch_span(users + begin, users + end);
        prefetch_span(items + begin, items + end);
        prefetch_span(ratings + begin, ratings + end);
    };
    auto take_run = [&](Lane& lane) {
        lane.t = lane.end = 0;
        if (next_run == n_runs) return;
        if (next_run + kRunsAhead < n_runs) prefetch_run(run_order[next_run + kRunsAhead]);
        const int64_t r = run_order[next_run++];
        lane.t = starts[r];
        lane.end = starts[r + 1];
        prefetch_row(P + static_cast<int64_t>(users[lane.t]) * stride, stride);
        for (int64_t t = lane.t; t < std::min(lane.t + kAhead, lane.end); ++t)
            prefetch_row(Q + static_cast<int64_t>(items[t]) * stride, stride);
    };
    // The prediction's terms outside the dot product: (mu + b_u) + b_i, the
    // order every backend uses, or mu when the rows carry the biases.
    auto base_of = [&](int64_t u, int64_t i) -> T {
        if constexpr (kBias == Bias::scalar) return (mu + bu[u]) + bi[i];
        if constexpr (kBias == Bias::in_rows) return mu;
        return T(0);
    };
    const V lr_v = splat<T>(lr);
    // err_v: the rating's error in every lane
    auto update = [&](V* __restrict p, V* __restrict q, int64_t u, int64_t i, V err_v) {
        const V step = lr_v * err_v;
        if constexpr (kBias == Bias::in_rows) {
            update_rows_and_biases<T>(p, q, err_v, step, shrink, last, n_vec);
        } else {
            if constexpr (kBias == Bias::scalar) {
                const T err = err_v[0];
                bu[u] += lr_b * (err - reg_b * bu[u]);
                bi[i] += lr_b * (err - reg_b * bi[i]);
            }
            update_rows<T, kNonNegative>(p, q, step, shrink, n_vec);
        }
    };
    // One rating, alone.
    auto visit = [&](int64_t t) {
        const int64_t u = users[t], i = items[t];
        V* __restrict p = reinterpret_cast<V*>(P + u * stride);
        V* __restrict q = reinterpret_cast<V*>(Q + i * stride);
        const V err_v = splat<T>(ratings[t]) - (splat<T>(base_of(u, i)) + dot_lanes<T>(p, q, n_vec));
        sse += static_cast<double>(err_v[0]) * static_cast<double>(err_v[0]);
        update(p, q, u, i, err_v);
    };
    // L ratings with distinct users and distinct items, their chains interleaved.
    auto visit_group = [&](const int64_t* t) {
        V* p[L];
        V* q[L];
        int64_t u[L], i[L];
        V acc0[L], acc1[L];
        for (int l = 0; l < L; ++l) {
            u[l] = users[t[l]];
            i[l] = items[t[l]];
            p[l] = reinterpret_cast<V*>(P + u[l] * stride);
            q[l] = reinterpret_cast<V*>(Q + i[l] * stride);
            acc0[l] = V{};
            acc1[l] = V{};
        }
        // the accumulation pattern of dot_lanes, for every lane at once
        int64_t v = 0;
        for (; v + 1 < n_vec; v += 2) {
#pragma GCC unroll 4
            for (int l = 0; l < L; ++l) {
                acc0[l] += p[l][v] * q[l][v];
                acc1[l] += p[l][v + 1] * q[l][v + 1];
            }
        }
        if (v < n_vec) {
#pragma GCC unroll 4
            for (int l = 0; l < L; ++l) acc0[l] += p[l][v] * q[l][v];
        }
        // The error as visit computes it.  One lambda for both made GCC emit 14
        // more vector moves here (epochs about 2% slower), so it is written twice.
        V err[L];
#pragma GCC unroll 4
        for (int l = 0; l < L; ++l) {
            err[l] = splat<T>(ratings[t[l]]) - (splat<T>(base_of(u[l], i[l])) + lane_sum(acc0[l] + acc1[l]));
            sse += static_cast<double>(err[l][0]) * static_cast<double>(err[l][0]);
        }
#pragma GCC unroll 4
        for (int l = 0; l < L; ++l) update(p[l], q[l], u[l], i[l], err[l]);
    };
    auto items_differ = [&](const int64_t* t) {
        int32_t item[L];
        for (int l = 0; l < L; ++l) item[l] = items[t[l]];
        bool differ = true;
        for (int l = 0; l < L; ++l)
            for (int m = l + 1; m < L; ++m) differ &= item[l] != item[m];
        return differ;
    };

    Lane lane[L];
    for (int64_t r = 0; r < std::min(kRunsAhead, n_runs); ++r) prefetch_run(run_order[r]);
    for (int l = 0; l < L; ++l) take_run(lane[l]);
    for (;;) {
        bool all_active = true;
        for (int l = 0; l < L; ++l) all_active &= lane[l].active();
        if (all_active) {
            // Every lane stays active until the shortest of their runs is used
            // up, and a lane's user is the same through its run: those steps
            // need no per-lane bookkeeping, and only their items are compared:
            // 5-7% faster epochs on the M benchmark data than checking every lane
            // and every user at each step.
            int64_t n_steps = lane[0].end - lane[0].t;
            bool users_differ = true;
            for (int l = 0; l < L; ++l) {
                n_steps = std::min(n_steps, lane[l].end - lane[l].t);
                for (int m = l + 1; m < L; ++m) users_differ &= users[lane[l].t] != users[lane[m].t];
            }
            for (int64_t s = 0; s < n_steps; ++s) {
                int64_t t[L];
                for (int l = 0; l < L; ++l) t[l] = lane[l].t + s;
                if (users_differ && items_differ(t)) {
                    visit_group(t);
                } else {
                    for (int l = 0; l < L; ++l) visit(t[l]);
                }
            }
            for (int l = 0; l < L; ++l) lane[l].t += n_steps;
        } else {
            // The block's last runs: fewer active lanes than L, one rating at a time.
            bool any_active = false;
            for (int l = 0; l < L; ++l) {
                if (!lane[l].active()) continue;
                visit(lane[l].t++);
                any_active = true;
            }
            if (!any_active) break;
        }
        for (int l = 0; l < L; ++l)
            if (!lane[l].active()) take_run(lane[l]);
    }
    return sse;
}

// Rows of up to kMaxFixedVec vectors (128 float or 64 double factors) get a
// kernel with the length fixed at compile time; longer rows, where the loop
// overhead matters less, and projected (non-negative) SGD use the run-time one.
constexpr int kMaxFixedVec = 8;

template <class T, Bias kBias, int kVec = 1>
double run_block_fixed(const SgdMfArgs<T>& a, const std::vector<int64_t>& starts,
                       const std::vector<int64_t>& run_order) {
    if constexpr (kVec > kMaxFixedVec) {
        return run_block_lanes<T, kBias, false, 0>(a, starts, run_order);
    } else {
        if (a.stride == kVec * Vec64<T>::lanes)
            return run_block_lanes<T, kBias, false, kVec>(a, starts, run_order);
        return run_block_fixed<T, kBias, kVec + 1>(a, starts, run_order);
    }
}

// One block: its runs, their shuffle (when asked), then SGD in the visit order.
template <class T>
double run_block(const SgdMfArgs<T>& a, int64_t block) {
    thread_local std::vector<int64_t> starts, run_order, window_order;
    find_runs(a, a.block_ptr[block], a.block_ptr[block + 1], starts);
    shuffle_runs(a, block, starts, run_order, window_order);
    if (a.non_negative)
        return a.biased ? run_block_lanes<T, Bias::scalar, true, 0>(a, starts, run_order)
                        : run_block_lanes<T, Bias::none, true, 0>(a, starts, run_order);
    if (!a.biased) return run_block_fixed<T, Bias::none>(a, starts, run_order);
    return biases_in_rows(a) ? run_block_fixed<T, Bias::in_rows>(a, starts, run_order)
                             : run_block_fixed<T, Bias::scalar>(a, starts, run_order);
}

// The schedule as a dependency graph over its non-empty slots: every slot
// names the next slot of its row group and of its column group (-1 if none)
// and counts the earlier slots it waits for (0, 1 or 2).
struct BlockGraph {
    std::vector<int64_t> slots;          // schedule positions of the blocks to run, in schedule order
    std::vector<int64_t> next_row, next_col;  // successors, as indices into slots
    std::vector<int> waiting_for;         // unfinished predecessors
};

template <class T>
BlockGraph block_graph(const SgdMfArgs<T>& a, int64_t side) {
    BlockGraph g;
    std::vector<int64_t> last_row(static_cast<size_t>(side), -1), last_col(static_cast<size_t>(side), -1);
    for (int64_t s = 0; s < a.n_strata * a.width; ++s) {
        const int64_t block = a.schedule[s];
        if (block < 0 || a.block_ptr[block + 1] == a.block_ptr[block]) continue;  // nothing to run
        const int64_t node = static_cast<int64_t>(g.slots.size());
        g.slots.push_back(s);
        g.next_row.push_back(-1);
        g.next_col.push_back(-1);
        g.waiting_for.push_back(0);
        int64_t& before_row = last_row[static_cast<size_t>(block / side)];
        int64_t& before_col = last_col[static_cast<size_t>(block % side)];
        if (before_row >= 0) {
            g.next_row[before_row] = node;
            ++g.waiting_for[node];
        }
        if (before_col >= 0 && before_col != before_row) {
            g.next_col[before_col] = node;
            ++g.waiting_for[node];
        }
        before_row = before_col = node;
    }
    return g;
}

// Runs the blocks of the schedule on n_threads threads, each block as soon as
// the blocks it waits for have finished (see the header comment).  Blocks last
// milliseconds, so one mutex guarding the ready list costs nothing measurable.
template <class T>
void run_graph(const SgdMfArgs<T>& a, int64_t side) {
    BlockGraph g = block_graph(a, side);
    const int64_t n_nodes = static_cast<int64_t>(g.slots.size());
    std::vector<int64_t> ready;  // FIFO: nodes in the order they became ready
    ready.reserve(static_cast<size_t>(n_nodes));
    for (int64_t node = 0; node < n_nodes; ++node)
        if (g.waiting_for[node] == 0) ready.push_back(node);
    size_t head = 0;
    int64_t finished = 0;
    std::mutex mutex;
    std::condition_variable changed;
#pragma omp parallel num_threads(a.n_threads)
    {
        for (;;) {
            int64_t node;
            {
                std::unique_lock<std::mutex> lock(mutex);
                changed.wait(lock, [&] { return head < ready.size() || finished == n_nodes; });
                if (head == ready.size()) break;  // everything has run
                node = ready[head++];
            }
            const int64_t block = a.schedule[g.slots[node]];
            a.out_block_sse[block] = run_block(a, block);
            {
                std::lock_guard<std::mutex> lock(mutex);
                ++finished;
                for (const int64_t next : {g.next_row[node], g.next_col[node]})
                    if (next >= 0 && --g.waiting_for[next] == 0) ready.push_back(next);
            }
            changed.notify_all();
        }
    }
}

// The epoch's blocks: in Hogwild mode, serially on one thread, or as a
// dependency graph.
template <class T>
void run_schedule(const SgdMfArgs<T>& a) {

    if (a.hogwild) {
        const int64_t n_slots = a.n_strata * a.width;
#pragma omp parallel for num_threads(a.n_threads) schedule(dynamic, 1)
        for (int64_t s = 0; s < n_slots; ++s) {
            const int64_t block = a.schedule[s];
            if (block >= 0) a.out_block_sse[block] = run_block(a, block);
        }
        return;
    }
    if (a.n_threads <= 1) {  // no parallel region: no fork/join cost per stratum
        for (int64_t s = 0; s < a.n_strata * a.width; ++s) {
            const int64_t block = a.schedule[s];
            if (block >= 0) a.out_block_sse[block] = run_block(a, block);
        }
        return;
    }
    run_graph(a, block_grid_side(a.n_blocks));
}

}  // namespace sgd_detail

template <class T>
void sgd_mf_epoch(const SgdMfArgs<T>& a) {
    using namespace sgd_detail;
    for (int64_t b = 0; b < a.n_blocks; ++b) a.out_block_sse[b] = 0.0;
    const bool in_rows = biases_in_rows(a);
    if (in_rows) move_biases_into_rows(a);
    run_schedule(a);
    if (in_rows) move_biases_out_of_rows(a);
}

template <class T>
void mf_predict(const MfPredictArgs<T>& a) {
    using V = vec64_t<T>;
    constexpr int lanes = Vec64<T>::lanes;
    const int64_t n_vec = a.stride / lanes;
#pragma omp parallel for num_threads(a.n_threads) schedule(static) if (a.n > 50000)
    for (int64_t t = 0; t < a.n; ++t) {
        const int64_t u = a.users[t], i = a.items[t];
        T value = static_cast<T>(a.mu);
        if (a.biased) {
            if (u >= 0) value += a.bu[u];
            if (i >= 0) value += a.bi[i];
        }
        if (u >= 0 && i >= 0) {
            const V* p = reinterpret_cast<const V*>(a.P + u * a.stride);
            const V* q = reinterpret_cast<const V*>(a.Q + i * a.stride);
            value += sgd_detail::dot_lanes<T>(p, q, n_vec)[0];
        }
        a.out[t] = value;
    }
}

}  // namespace FASTREC_ISA_NS
}  // namespace fastrec
#endif  // FASTREC_ISA_NS
