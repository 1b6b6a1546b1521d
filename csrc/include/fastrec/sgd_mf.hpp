// Biased matrix factorization of explicit ratings by stochastic gradient descent.
//
//   r_hat(u, i) = mu + b_u + b_i + <p_u, q_i>
//
// One call runs one epoch.  The ratings arrive grouped into the blocks of a
// users x items grid (the caller assigns every user to a row group and every
// item to a column group).  The caller's schedule lists the epoch as a sequence
// of strata; the blocks of one stratum share no row group and no column group,
// so they touch disjoint user and item rows and run in parallel without locks
// (the conflict-free scheduling of LIBMF / DSGD).  Strata run one after another.
// Because each user row and each item row sees its blocks in the order the
// schedule fixes, the model does not depend on which thread ran which block:
// same inputs and schedule, bit-identical model.
//
// Every block is shuffled in place before it is visited, by a Fisher-Yates pass
// driven by a counter-based generator (splitmix64) keyed by (shuffle_seed,
// block).  fastrec/mf/_numba.py and _reference.py implement the same generator,
// so all backends visit the same order.  A negative shuffle_seed visits the
// arrays exactly as given, which lets a caller impose any order.
//
// Within a block, two consecutive ratings that share neither user nor item run
// as an interleaved pair (exactly the sequential result, more instruction-level
// parallelism); factor rows a few ratings ahead are prefetched.
//
// Factor rows are `stride` elements long, stride a multiple of the 64-byte SIMD
// width, and rows start 64-byte aligned.  The padding lanes hold zeros and stay
// zero (every update is a linear combination of the two rows), so the kernel
// works on whole vectors with no remainder loop.
//
// Hogwild mode ignores the strata: every block runs as soon as a thread is
// free, and updates to shared rows race without locks.  It is faster when the
// grid is unbalanced but not deterministic.
#pragma once

#include "fastrec/prelude.hpp"

namespace fastrec {

template <class T>
struct SgdMfArgs {
    int32_t* users;               // INOUT (nnz) inner user of every rating, grouped by block
    int32_t* items;               // INOUT (nnz) inner item of every rating
    T* ratings;                   // INOUT (nnz) rating values (the three arrays are shuffled together)
    const int64_t* block_ptr;     // IN    (n_blocks + 1) ratings of block b: [block_ptr[b], block_ptr[b+1])
    int64_t n_blocks;             // IN
    const int64_t* schedule;      // IN    (n_strata x width) block ids, -1 for an empty slot
    int64_t n_strata;             // IN
    int64_t width;                // IN    slots per stratum
    T* P;                         // INOUT (n_users x stride) user factors, 64-byte aligned rows
    T* Q;                         // INOUT (n_items x stride) item factors, 64-byte aligned rows
    T* bu;                        // INOUT (n_users) user biases
    T* bi;                        // INOUT (n_items) item biases
    int64_t stride;               // IN    row length, a multiple of 64 / sizeof(T)
    double mu;                    // IN    global mean (0 for an unbiased model)
    double lr, reg;               // IN    learning rate and L2 penalty of the factors
    double lr_bias, reg_bias;     // IN    the same for the biases
    bool biased;                  // IN    learn b_u and b_i
    bool non_negative;            // IN    project the factors onto >= 0 after each update
    bool hogwild;                 // IN    ignore the strata (racy, not deterministic)
    int64_t shuffle_seed;         // IN    >= 0: shuffle each block first; < 0: visit as given
    double* out_block_sse;        // OUT   (n_blocks) sum of squared errors met during the epoch
    int n_threads;                // IN    OpenMP threads (>= 1)
};

// Scores r_hat for (user, item) pairs; a negative index means "unknown" and drops
// the terms of that side (the bias fallbacks documented in fastrec.mf).
template <class T>
struct MfPredictArgs {
    const T* P;            // IN  (n_users x stride)
    const T* Q;            // IN  (n_items x stride)
    const T* bu;           // IN  (n_users)
    const T* bi;           // IN  (n_items)
    int64_t stride;        // IN
    double mu;             // IN
    bool biased;           // IN
    const int32_t* users;  // IN  (n) inner user or -1
    const int32_t* items;  // IN  (n) inner item or -1
    int64_t n;             // IN
    T* out;                // OUT (n)
    int n_threads;         // IN
};

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

// Sum of a vector's lanes by halving, in registers (a memcpy-based split made
// GCC keep the accumulator on the stack through the whole dot-product loop).
inline float hsum(vec64_t<float> v) {
    typedef float half_t __attribute__((vector_size(32)));
    typedef float quarter_t __attribute__((vector_size(16)));
    const half_t h = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                     __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    const quarter_t q = __builtin_shufflevector(h, h, 0, 1, 2, 3) + __builtin_shufflevector(h, h, 4, 5, 6, 7);
    return (q[0] + q[2]) + (q[1] + q[3]);
}

inline double hsum(vec64_t<double> v) {
    typedef double half_t __attribute__((vector_size(32)));
    typedef double quarter_t __attribute__((vector_size(16)));
    const half_t h = __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
    const quarter_t q = __builtin_shufflevector(h, h, 0, 1) + __builtin_shufflevector(h, h, 2, 3);
    return q[0] + q[1];
}

// <p, q> over n_vec whole vectors; two accumulators halve the FMA dependency chain.
template <class T>
inline T dot_rows(const vec64_t<T>* __restrict p, const vec64_t<T>* __restrict q, int64_t n_vec) {
    vec64_t<T> acc0 = {}, acc1 = {};
    int64_t v = 0;
    for (; v + 1 < n_vec; v += 2) {
        acc0 += p[v] * q[v];
        acc1 += p[v + 1] * q[v + 1];
    }
    if (v < n_vec) acc0 += p[v] * q[v];
    return hsum(acc0 + acc1);
}

// Cache lines of one factor row that the next ratings will need.
template <class T>
inline void prefetch_row(const T* row, int64_t stride) {
    const char* bytes = reinterpret_cast<const char*>(row);
    const int64_t n_bytes = stride * static_cast<int64_t>(sizeof(T));
    for (int64_t off = 0; off < n_bytes; off += static_cast<int64_t>(kCacheLine))
        __builtin_prefetch(bytes + off, 1, 3);
}

template <class T>
void shuffle_block(const SgdMfArgs<T>& a, int64_t block) {
    const int64_t begin = a.block_ptr[block];
    const int64_t n = a.block_ptr[block + 1] - begin;
    uint64_t state = sgd_rng::block_state(a.shuffle_seed, block);
    int32_t* users = a.users + begin;
    int32_t* items = a.items + begin;
    T* ratings = a.ratings + begin;
    for (int64_t i = n - 1; i > 0; --i) {
        state += sgd_rng::kGolden;
        const uint64_t z = sgd_rng::mix(state);
        // Multiply-high maps 32 random bits onto [0, i]; blocks hold < 2^32 ratings.
        const int64_t j = static_cast<int64_t>(((z >> 32) * static_cast<uint64_t>(i + 1)) >> 32);
        std::swap(users[i], users[j]);
        std::swap(items[i], items[j]);
        std::swap(ratings[i], ratings[j]);
    }
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

// SGD over ratings [begin, end) in their stored order; returns the sum of squared
// errors.  One rating's work is a long dependency chain (dot product, lane sum,
// error, update), so two consecutive ratings with different users and different
// items run as a pair whose chains interleave.  Neither reads what the other
// writes, so the result is exactly that of visiting them one after the other.
template <class T, bool kBiased, bool kNonNegative>
double run_ratings(const SgdMfArgs<T>& a, int64_t begin, int64_t end) {
    using V = vec64_t<T>;
    constexpr int lanes = Vec64<T>::lanes;
    constexpr int64_t kAhead = 4;  // ratings between a row prefetch and its use
    // Locals, so that stores through the factor pointers cannot force reloads.
    const int32_t* __restrict users = a.users;
    const int32_t* __restrict items = a.items;
    const T* __restrict ratings = a.ratings;
    T* const P = a.P;
    T* const Q = a.Q;
    T* const bu = a.bu;
    T* const bi = a.bi;
    const int64_t stride = a.stride, n_vec = a.stride / lanes;
    const T mu = static_cast<T>(a.mu);
    const T lr = static_cast<T>(a.lr), lr_b = static_cast<T>(a.lr_bias);
    const T reg_b = static_cast<T>(a.reg_bias);
    const V shrink = splat<T>(T(1) - static_cast<T>(a.lr * a.reg));
    double sse = 0.0;

    int64_t t = begin;
    while (t < end) {
        for (int64_t ahead = t + kAhead; ahead < std::min(t + kAhead + 2, end); ++ahead) {
            prefetch_row(P + static_cast<int64_t>(users[ahead]) * stride, stride);
            prefetch_row(Q + static_cast<int64_t>(items[ahead]) * stride, stride);
        }
        const int64_t u0 = users[t], i0 = items[t];
        V* __restrict p0 = reinterpret_cast<V*>(P + u0 * stride);
        V* __restrict q0 = reinterpret_cast<V*>(Q + i0 * stride);
        if (t + 1 < end && users[t + 1] != u0 && items[t + 1] != i0) {
            const int64_t u1 = users[t + 1], i1 = items[t + 1];
            V* __restrict p1 = reinterpret_cast<V*>(P + u1 * stride);
            V* __restrict q1 = reinterpret_cast<V*>(Q + i1 * stride);
            // the accumulation pattern of dot_rows, for both ratings at once
            V a0 = {}, b0 = {}, a1 = {}, b1 = {};
            int64_t v = 0;
            for (; v + 1 < n_vec; v += 2) {
                a0 += p0[v] * q0[v];
                a1 += p1[v] * q1[v];
                b0 += p0[v + 1] * q0[v + 1];
                b1 += p1[v + 1] * q1[v + 1];
            }
            if (v < n_vec) {
                a0 += p0[v] * q0[v];
                a1 += p1[v] * q1[v];
            }
            const T base0 = kBiased ? (mu + bu[u0]) + bi[i0] : T(0);
            const T base1 = kBiased ? (mu + bu[u1]) + bi[i1] : T(0);
            const T err0 = ratings[t] - (base0 + hsum(a0 + b0));
            const T err1 = ratings[t + 1] - (base1 + hsum(a1 + b1));
            sse += static_cast<double>(err0) * static_cast<double>(err0);
            sse += static_cast<double>(err1) * static_cast<double>(err1);
            if constexpr (kBiased) {
                bu[u0] += lr_b * (err0 - reg_b * bu[u0]);
                bi[i0] += lr_b * (err0 - reg_b * bi[i0]);
                bu[u1] += lr_b * (err1 - reg_b * bu[u1]);
                bi[i1] += lr_b * (err1 - reg_b * bi[i1]);
            }
            update_rows<T, kNonNegative>(p0, q0, splat<T>(lr * err0), shrink, n_vec);
            update_rows<T, kNonNegative>(p1, q1, splat<T>(lr * err1), shrink, n_vec);
            t += 2;
            continue;
        }
        // (mu + b_u + b_i) + dot, the order every backend uses
        const T base = kBiased ? (mu + bu[u0]) + bi[i0] : T(0);
        const T err = ratings[t] - (base + dot_rows<T>(p0, q0, n_vec));
        sse += static_cast<double>(err) * static_cast<double>(err);
        if constexpr (kBiased) {
            bu[u0] += lr_b * (err - reg_b * bu[u0]);
            bi[i0] += lr_b * (err - reg_b * bi[i0]);
        }
        update_rows<T, kNonNegative>(p0, q0, splat<T>(lr * err), shrink, n_vec);
        t += 1;
    }
    return sse;
}

// One block: shuffle (when asked), then SGD in the resulting order.
template <class T>
double run_block(const SgdMfArgs<T>& a, int64_t block) {
    if (a.shuffle_seed >= 0) shuffle_block(a, block);
    const int64_t begin = a.block_ptr[block], end = a.block_ptr[block + 1];
    if (a.biased)
        return a.non_negative ? run_ratings<T, true, true>(a, begin, end)
                              : run_ratings<T, true, false>(a, begin, end);
    return a.non_negative ? run_ratings<T, false, true>(a, begin, end)
                          : run_ratings<T, false, false>(a, begin, end);
}

}  // namespace sgd_detail

template <class T>
void sgd_mf_epoch(const SgdMfArgs<T>& a) {
    using namespace sgd_detail;
    for (int64_t b = 0; b < a.n_blocks; ++b) a.out_block_sse[b] = 0.0;

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
#pragma omp parallel num_threads(a.n_threads)
    {
        for (int64_t s = 0; s < a.n_strata; ++s) {
            // The implicit barrier at the end of the loop separates the strata.
#pragma omp for schedule(dynamic, 1)
            for (int64_t w = 0; w < a.width; ++w) {
                const int64_t block = a.schedule[s * a.width + w];
                if (block >= 0) a.out_block_sse[block] = run_block(a, block);
            }
        }
    }
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
            value += sgd_detail::dot_rows<T>(p, q, n_vec);
        }
        a.out[t] = value;
    }
}

}  // namespace FASTREC_ISA_NS
}  // namespace fastrec
#endif  // FASTREC_ISA_NS
