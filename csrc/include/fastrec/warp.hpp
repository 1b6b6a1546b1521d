// Implicit-feedback factorization trained with the WARP loss (Weston, Bengio and
// Usunier 2011), as LightFM implements it.
//
//   s(u, x) = <p_u, q_x> + b_x
//
// One call runs one epoch over the positives listed by `order`.  For the
// positive (u, i) = (users[t], indices[t]), candidates j are drawn uniformly
// from [0, n_items), at most max_sampled of them; the first j that is not a
// positive of u (binary search in u's sorted row) and violates the margin,
// s(u, j) > s(u, i) - margin, after N draws (positives count as draws) is the
// violator.  Its weight is L = log(floor((n_items - 1) / N)) (LightFM's rank
// weight; an estimate of 1 weighs 0 and updates nothing), and SGD steps on
// L * (margin - s(u, i) + s(u, j)):
//
//   g_p = reg p_u - L (q_i - q_j),  g_i = reg q_i - L p_u,  g_j = reg q_j + L p_u,
//   g_bi = reg b_i - L,  g_bj = reg b_j + L,
//
// all taken before the step; each parameter x moves by -lr g, or with adagrad by
// -lr g / sqrt(a) after a += g^2, a being x's own accumulator.
// fastrec/implicit/warp/_reference.py is the definition; _numba.py the same loop.
//
// The hot part is scoring candidates.  Draws come from a counter-based
// generator (splitmix64 of a state advanced by a constant), so the kernel draws
// a few candidates ahead, prefetches their rows, and then scores them in order;
// the state is then set to where the candidates actually used leave it, which
// keeps the stream equal to the reference's one-draw-at-a-time stream.  A
// candidate's positivity is looked up only when it violates the margin (a
// positive that does not violate is passed over either way).  The rows of the
// positives a few visits ahead are prefetched too: the visit order is random.
//
// Threads: `order` is cut into n_threads equal chunks; chunk c runs on one
// thread with the draw stream keyed by (seed, c).  The threads update shared
// rows without locks (Hogwild), so a run with several threads is not
// reproducible bit for bit; with one it is.  With explicit `draws` (tests) the
// whole order runs as one chunk that takes its candidates from `draws` in turn.
//
// Rows are `stride` elements, stride a multiple of 64 bytes, 64-byte aligned;
// the padding lanes after n_factors hold zeros (and the accumulators' padding
// lanes nonzero values, ones in practice), so whole vectors are updated and
// the padding stays zero.
#pragma once

#include "fastrec/prelude.hpp"

namespace fastrec {

template <class T>
struct WarpEpochArgs {
    const int64_t* indptr;    // IN    (n_users + 1) positives of u: indices[indptr[u], indptr[u+1])
    const int32_t* indices;   // IN    (nnz) items, sorted within every row
    const int32_t* users;     // IN    (nnz) row of every entry
    const int64_t* order;     // IN    (n_visits) entries to visit, in order
    const int32_t* draws;     // IN    (n_draws) explicit candidates, or nullptr / n_draws 0
    T* P;                     // INOUT (n_users x stride) user factors
    T* Q;                     // INOUT (n_items x stride) item factors
    T* bi;                    // INOUT (n_items) item biases
    T* P_acc;                 // INOUT (n_users x stride) adagrad accumulators (adagrad only)
    T* Q_acc;                 // INOUT (n_items x stride)
    T* bi_acc;                // INOUT (n_items)
    int64_t n_users, nnz, n_visits, n_draws, n_items, stride;
    int64_t n_factors;        // IN    factors per row, <= stride
    double lr, reg, margin;   // IN
    int64_t max_sampled;      // IN    draws per positive, >= 1
    bool adagrad;             // IN    adagrad steps, else constant
    int64_t seed;             // IN    key of the draw streams
    double* out_stats;        // OUT   (3) weighted hinge summed, updates made, positives visited
    int n_threads;            // IN
};

// The Python-visible arguments of warp_epoch, in call order (see
// csrc/bindings/fields.hpp); the binding also checks rows, indices and alignment.
#define FASTREC_WARP_EPOCH_FIELDS(F, A)                                            \
    F(indptr, int64_t, IN_EXACT, A.indptr, (bind_indptr(A.n_users)))               \
    F(indices, int32_t, IN_EXACT, A.indices, (bind(A.nnz)))                        \
    F(users, int32_t, IN_EXACT, A.users, (A.nnz))                                  \
    F(order, int64_t, IN_EXACT, A.order, (bind(A.n_visits)))                       \
    F(draws, int32_t, IN_EXACT, A.draws, (bind(A.n_draws)))                        \
    F(P, T, INOUT, A.P, (A.n_users, bind(A.stride)))                               \
    F(Q, T, INOUT, A.Q, (bind(A.n_items), A.stride))                               \
    F(bi, T, INOUT, A.bi, (A.n_items))                                             \
    F(P_acc, T, INOUT, A.P_acc, (when(adagrad), A.n_users, A.stride))              \
    F(Q_acc, T, INOUT, A.Q_acc, (when(adagrad), A.n_items, A.stride))              \
    F(bi_acc, T, INOUT, A.bi_acc, (when(adagrad), A.n_items))                      \
    F(n_factors, int64_t, VALUE, A.n_factors, (in_range(1, A.stride)))             \
    F(lr, double, VALUE, A.lr, (finite_at_least(0)))                               \
    F(reg, double, VALUE, A.reg, (finite_at_least(0)))                             \
    F(margin, double, VALUE, A.margin, (finite_at_least(0)))                       \
    F(max_sampled, int64_t, VALUE, A.max_sampled, (at_least(1)))                   \
    F(adagrad, bool, VALUE, A.adagrad, ())                                         \
    F(seed, int64_t, VALUE, A.seed, ())                                            \
    F(out_stats, double, OUT, A.out_stats, (3))                                    \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))

// warp_epoch with items represented by features (LightFM's item model): item x is
// q_x = sum_f X[x, f] E_f and b_x = sum_f X[x, f] eb_f, X the CSR feature_*.  The
// draws, the violator and its weight are warp_epoch's on these representations.
// The step, with c = X[x, f] L and every gradient at the values before the user's
// step: p_u as in warp_epoch with q_i - q_j of the representations; then for every
// feature f of i in row order g = reg E_f - c p_u, g_b = reg eb_f - c; then for
// every feature of j g = reg E_f + c p_u, g_b = reg eb_f + c; each step constant or
// adagrad.  Identity features give warp_epoch's model.
template <class T>
struct WarpEpochFeaturesArgs {
    const int64_t* indptr;           // IN    (n_users + 1) positives of every user
    const int32_t* indices;          // IN    (nnz) items, sorted within every row
    const int32_t* users;            // IN    (nnz) row of every entry
    const int64_t* order;            // IN    (n_visits) entries to visit, in order
    const int32_t* draws;            // IN    (n_draws) explicit candidates, or none
    const int64_t* feature_indptr;   // IN    (n_items + 1) features of item x: row x
    const int32_t* feature_indices;  // IN    (n_entries) feature of every entry
    const T* feature_data;           // IN    (n_entries) its value
    T* P;                            // INOUT (n_users x stride) user factors
    T* E;                            // INOUT (n_features x stride) feature embeddings
    T* eb;                           // INOUT (n_features) feature biases
    T* P_acc;                        // INOUT (n_users x stride) adagrad accumulators (adagrad only)
    T* E_acc;                        // INOUT (n_features x stride)
    T* eb_acc;                       // INOUT (n_features)
    int64_t n_users, nnz, n_visits, n_draws, n_items, n_entries, n_features, stride;
    int64_t n_factors;               // IN
    double lr, reg, margin;          // IN
    int64_t max_sampled;             // IN
    bool adagrad;                    // IN
    int64_t seed;                    // IN
    double* out_stats;               // OUT   (3) weighted hinge summed, updates made, positives visited
    int n_threads;                   // IN
};

#define FASTREC_WARP_EPOCH_FEATURES_FIELDS(F, A)                                   \
    F(indptr, int64_t, IN_EXACT, A.indptr, (bind_indptr(A.n_users)))               \
    F(indices, int32_t, IN_EXACT, A.indices, (bind(A.nnz)))                        \
    F(users, int32_t, IN_EXACT, A.users, (A.nnz))                                  \
    F(order, int64_t, IN_EXACT, A.order, (bind(A.n_visits)))                       \
    F(draws, int32_t, IN_EXACT, A.draws, (bind(A.n_draws)))                        \
    F(feature_indptr, int64_t, IN_EXACT, A.feature_indptr, (bind_indptr(A.n_items))) \
    F(feature_indices, int32_t, IN_EXACT, A.feature_indices, (bind(A.n_entries)))  \
    F(feature_data, T, IN_EXACT, A.feature_data, (A.n_entries))                    \
    F(P, T, INOUT, A.P, (A.n_users, bind(A.stride)))                               \
    F(E, T, INOUT, A.E, (bind(A.n_features), A.stride))                            \
    F(eb, T, INOUT, A.eb, (A.n_features))                                          \
    F(P_acc, T, INOUT, A.P_acc, (when(adagrad), A.n_users, A.stride))              \
    F(E_acc, T, INOUT, A.E_acc, (when(adagrad), A.n_features, A.stride))           \
    F(eb_acc, T, INOUT, A.eb_acc, (when(adagrad), A.n_features))                   \
    F(n_factors, int64_t, VALUE, A.n_factors, (in_range(1, A.stride)))             \
    F(lr, double, VALUE, A.lr, (finite_at_least(0)))                               \
    F(reg, double, VALUE, A.reg, (finite_at_least(0)))                             \
    F(margin, double, VALUE, A.margin, (finite_at_least(0)))                       \
    F(max_sampled, int64_t, VALUE, A.max_sampled, (at_least(1)))                   \
    F(adagrad, bool, VALUE, A.adagrad, ())                                         \
    F(seed, int64_t, VALUE, A.seed, ())                                            \
    F(out_stats, double, OUT, A.out_stats, (3))                                    \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))

// The draw streams, shared by every backend (see _reference.py).
namespace warp_rng {
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

inline uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

inline uint64_t chunk_state(int64_t seed, int64_t chunk) {
    return mix(static_cast<uint64_t>(seed) + static_cast<uint64_t>(chunk + 1) * kGolden);
}

// The item of the draw made from `state` (already advanced by kGolden).
inline int64_t item_of(uint64_t state, int64_t n_items) {
    return static_cast<int64_t>(((mix(state) >> 32) * static_cast<uint64_t>(n_items)) >> 32);
}
}  // namespace warp_rng

}  // namespace fastrec

FASTREC_DECLARE_FOR_EACH_ISA(template <class T> void warp_epoch(const WarpEpochArgs<T>& args);
                             template <class T> void warp_epoch_features(const WarpEpochFeaturesArgs<T>& args);)

#ifdef FASTREC_ISA_NS
#include "fastrec/simd.hpp"

namespace fastrec {
namespace FASTREC_ISA_NS {
namespace warp_detail {

template <class T>
using V = vec64_t<T>;

// x in every lane (x - 0 is x for every x, -0 and NaN included).
template <class T>
inline V<T> splat(T x) {
    return x - V<T>{};
}

// Sum of the lanes, left to right.
template <class T>
inline T lane_total(V<T> v) {
    T total = v[0];
    for (int l = 1; l < Vec64<T>::lanes; ++l) total += v[l];
    return total;
}

// <p, q> over n_vec whole vectors, two accumulators.
template <class T, int kVec>
inline T dot(const V<T>* __restrict p, const V<T>* __restrict q, int64_t n_vec_rt) {
    const int64_t n_vec = kVec > 0 ? kVec : n_vec_rt;
    V<T> acc0{}, acc1{};
    int64_t v = 0;
    for (; v + 1 < n_vec; v += 2) {
        acc0 += p[v] * q[v];
        acc1 += p[v + 1] * q[v + 1];
    }
    if (v < n_vec) acc0 += p[v] * q[v];
    return lane_total<T>(acc0 + acc1);
}

template <class T>
inline V<T> vsqrt(V<T> x) {
    V<T> out;
    for (int l = 0; l < Vec64<T>::lanes; ++l) out[l] = std::sqrt(x[l]);
    return out;
}

inline void prefetch_lines(const void* at, int64_t bytes) {
    const char* c = static_cast<const char*>(at);
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b);
}

inline bool is_positive(const int32_t* indices, int64_t begin, int64_t end, int64_t item) {
    int64_t lo = begin, hi = end;
    while (lo < hi) {
        const int64_t mid = (lo + hi) >> 1;
        if (indices[mid] < item)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < end && indices[lo] == item;
}

struct ChunkStats {
    double loss = 0.0;
    double updates = 0.0;
};

// Candidates drawn ahead of scoring (and prefetched), at most this many.
constexpr int kDrawAhead = 4;
// Visits ahead whose factor rows are prefetched, and twice that for their entries.
constexpr int64_t kVisitAhead = 4;

template <class T, bool kAdagrad, int kVec>
ChunkStats run_chunk(const WarpEpochArgs<T>& a, int64_t begin_at, int64_t end_at, uint64_t state) {
    using Vt = V<T>;
    constexpr int lanes = Vec64<T>::lanes;
    const int64_t n_vec = kVec > 0 ? kVec : a.stride / lanes;
    const int64_t stride = n_vec * lanes;
    const int64_t row_bytes = stride * static_cast<int64_t>(sizeof(T));
    const int64_t n_items = a.n_items;
    const T lr = static_cast<T>(a.lr), reg = static_cast<T>(a.reg), margin = static_cast<T>(a.margin);
    const Vt lr_v = splat<T>(lr), reg_v = splat<T>(reg);
    const bool explicit_draws = a.n_draws > 0;
    int64_t cursor = 0;
    T* const P = a.P;
    T* const Q = a.Q;
    T* const bi = a.bi;
    const int32_t* __restrict indices = a.indices;
    const int32_t* __restrict users = a.users;
    const int64_t* __restrict order = a.order;
    ChunkStats stats;

    for (int64_t position = begin_at; position < end_at; ++position) {
        if (position + 2 * kVisitAhead < end_at) {
            const int64_t ahead = order[position + 2 * kVisitAhead];
            __builtin_prefetch(users + ahead);
            __builtin_prefetch(indices + ahead);
        }
        if (position + kVisitAhead < end_at) {
            const int64_t ahead = order[position + kVisitAhead];
            const int64_t ua = users[ahead];
            prefetch_lines(P + ua * stride, row_bytes);
            prefetch_lines(Q + static_cast<int64_t>(indices[ahead]) * stride, row_bytes);
            __builtin_prefetch(a.indptr + ua);
            if constexpr (kAdagrad) prefetch_lines(a.P_acc + ua * stride, row_bytes);
        }
        const int64_t t = order[position];
        const int64_t u = users[t], i = indices[t];
        const int64_t row_begin = a.indptr[u], row_end = a.indptr[u + 1];
        Vt* __restrict p = reinterpret_cast<Vt*>(P + u * stride);
        Vt* __restrict qi = reinterpret_cast<Vt*>(Q + i * stride);
        const T s_i = dot<T, kVec>(p, qi, n_vec) + bi[i];
        const T threshold = s_i - margin;

        // Candidates: from the explicit list, or drawn ahead from the stream.
        int64_t available = a.max_sampled;
        if (explicit_draws) available = std::min<int64_t>(available, a.n_draws - cursor);
        int64_t candidate[kDrawAhead];
        uint64_t draw_state = state;
        auto next_candidate = [&](int64_t n) -> int64_t {
            if (explicit_draws) return a.draws[cursor + n];
            draw_state += warp_rng::kGolden;
            return warp_rng::item_of(draw_state, n_items);
        };
        const int64_t first = std::min<int64_t>(available, kDrawAhead);
        for (int64_t n = 0; n < first; ++n) {
            candidate[n] = next_candidate(n);
            prefetch_lines(Q + candidate[n] * stride, row_bytes);
            __builtin_prefetch(bi + candidate[n]);
        }
        int64_t n_drawn = 0, violator = -1;
        T s_j = 0;
        while (n_drawn < available) {
            const int64_t j = candidate[n_drawn % kDrawAhead];
            if (n_drawn + kDrawAhead < available) {
                const int64_t later = next_candidate(n_drawn + kDrawAhead);
                candidate[n_drawn % kDrawAhead] = later;
                prefetch_lines(Q + later * stride, row_bytes);
                __builtin_prefetch(bi + later);
            }
            ++n_drawn;
            const T s = dot<T, kVec>(p, reinterpret_cast<const Vt*>(Q + j * stride), n_vec) + bi[j];
            if (s > threshold && !is_positive(indices, row_begin, row_end, j)) {
                violator = j;
                s_j = s;
                break;
            }
        }
        if (explicit_draws)
            cursor += n_drawn;
        else
            state += static_cast<uint64_t>(n_drawn) * warp_rng::kGolden;
        if (violator < 0) continue;
        const int64_t rank = (n_items - 1) / n_drawn;
        if (rank <= 1) continue;
        const double weight = std::log(static_cast<double>(rank));
        const T L = static_cast<T>(weight);
        stats.loss += weight * static_cast<double>((margin - s_i) + s_j);
        stats.updates += 1.0;
        const int64_t j = violator;
        Vt* __restrict qj = reinterpret_cast<Vt*>(Q + j * stride);
        const Vt L_v = splat<T>(L);
        if constexpr (kAdagrad) {
            Vt* __restrict ap = reinterpret_cast<Vt*>(a.P_acc + u * stride);
            Vt* __restrict ai = reinterpret_cast<Vt*>(a.Q_acc + i * stride);
            Vt* __restrict aj = reinterpret_cast<Vt*>(a.Q_acc + j * stride);
            for (int64_t v = 0; v < n_vec; ++v) {
                const Vt pv = p[v], qiv = qi[v], qjv = qj[v];
                const Vt g_p = reg_v * pv - L_v * (qiv - qjv);
                const Vt g_i = reg_v * qiv - L_v * pv;
                const Vt g_j = reg_v * qjv + L_v * pv;
                const Vt np_ = ap[v] + g_p * g_p;
                const Vt ni = ai[v] + g_i * g_i;
                const Vt nj = aj[v] + g_j * g_j;
                ap[v] = np_;
                ai[v] = ni;
                aj[v] = nj;
                p[v] = pv - lr_v * g_p / vsqrt<T>(np_);
                qi[v] = qiv - lr_v * g_i / vsqrt<T>(ni);
                qj[v] = qjv - lr_v * g_j / vsqrt<T>(nj);
            }
            const T g_bi = reg * bi[i] - L, g_bj = reg * bi[j] + L;
            a.bi_acc[i] += g_bi * g_bi;
            bi[i] = bi[i] - lr * g_bi / std::sqrt(a.bi_acc[i]);
            a.bi_acc[j] += g_bj * g_bj;
            bi[j] = bi[j] - lr * g_bj / std::sqrt(a.bi_acc[j]);
        } else {
            for (int64_t v = 0; v < n_vec; ++v) {
                const Vt pv = p[v], qiv = qi[v], qjv = qj[v];
                p[v] = pv - lr_v * (reg_v * pv - L_v * (qiv - qjv));
                qi[v] = qiv - lr_v * (reg_v * qiv - L_v * pv);
                qj[v] = qjv - lr_v * (reg_v * qjv + L_v * pv);
            }
            const T g_bi = reg * bi[i] - L, g_bj = reg * bi[j] + L;
            bi[i] = bi[i] - lr * g_bi;
            bi[j] = bi[j] - lr * g_bj;
        }
    }
    return stats;
}

// Rows of up to kMaxFixedVec vectors get a kernel with their length fixed at compile time.
constexpr int kMaxFixedVec = 8;

template <class T, bool kAdagrad, int kVec = 1>
ChunkStats run_chunk_fixed(const WarpEpochArgs<T>& a, int64_t begin_at, int64_t end_at, uint64_t state) {
    if constexpr (kVec > kMaxFixedVec) {
        return run_chunk<T, kAdagrad, 0>(a, begin_at, end_at, state);
    } else {
        if (a.stride == kVec * Vec64<T>::lanes) return run_chunk<T, kAdagrad, kVec>(a, begin_at, end_at, state);
        return run_chunk_fixed<T, kAdagrad, kVec + 1>(a, begin_at, end_at, state);
    }
}


// q_x into `out` and b_x returned: the features of x weighted by its values, in row order.
template <class T>
inline T representation(const WarpEpochFeaturesArgs<T>& a, int64_t x, V<T>* __restrict out, int64_t n_vec) {
    for (int64_t v = 0; v < n_vec; ++v) out[v] = V<T>{};
    T bias = 0;
    for (int64_t e = a.feature_indptr[x]; e < a.feature_indptr[x + 1]; ++e) {
        const int64_t f = a.feature_indices[e];
        const T w = a.feature_data[e];
        const V<T> w_v = splat<T>(w);
        const V<T>* row = reinterpret_cast<const V<T>*>(a.E + f * a.stride);
        for (int64_t v = 0; v < n_vec; ++v) out[v] = out[v] + w_v * row[v];
        bias = bias + w * a.eb[f];
    }
    return bias;
}

// x - lr g, or the adagrad step with accumulator acc (updated), on one vector.
template <class T, bool kAdagrad>
inline V<T> step(V<T> x, V<T> g, V<T>* acc, V<T> lr_v) {
    if constexpr (kAdagrad) {
        const V<T> total = *acc + g * g;
        *acc = total;
        return x - lr_v * g / vsqrt<T>(total);
    } else {
        return x - lr_v * g;
    }
}

template <class T, bool kAdagrad>
inline T step_scalar(T x, T g, T* acc, T lr) {
    if constexpr (kAdagrad) {
        *acc += g * g;
        return x - lr * g / std::sqrt(*acc);
    } else {
        return x - lr * g;
    }
}

template <class T, bool kAdagrad>
ChunkStats run_chunk_features(const WarpEpochFeaturesArgs<T>& a, int64_t begin_at, int64_t end_at, uint64_t state,
                              V<T>* qi, V<T>* qj, V<T>* pu) {
    using Vt = V<T>;
    constexpr int lanes = Vec64<T>::lanes;
    const int64_t n_vec = a.stride / lanes;
    const int64_t stride = a.stride;
    const int64_t n_items = a.n_items;
    const T lr = static_cast<T>(a.lr), reg = static_cast<T>(a.reg), margin = static_cast<T>(a.margin);
    const Vt lr_v = splat<T>(lr), reg_v = splat<T>(reg);
    const bool explicit_draws = a.n_draws > 0;
    int64_t cursor = 0;
    ChunkStats stats;
    for (int64_t position = begin_at; position < end_at; ++position) {
        if (position + kVisitAhead < end_at)
            prefetch_lines(a.P + static_cast<int64_t>(a.users[a.order[position + kVisitAhead]]) * stride,
                           stride * static_cast<int64_t>(sizeof(T)));
        const int64_t t = a.order[position];
        const int64_t u = a.users[t], i = a.indices[t];
        const int64_t row_begin = a.indptr[u], row_end = a.indptr[u + 1];
        Vt* __restrict p = reinterpret_cast<Vt*>(a.P + u * stride);
        const T b_i = representation(a, i, qi, n_vec);
        const T s_i = dot<T, 0>(p, qi, n_vec) + b_i;
        const T threshold = s_i - margin;
        int64_t available = a.max_sampled;
        if (explicit_draws) available = std::min<int64_t>(available, a.n_draws - cursor);
        int64_t n_drawn = 0, violator = -1;
        T s_j = 0;
        uint64_t draw_state = state;
        while (n_drawn < available) {
            int64_t j;
            if (explicit_draws) {
                j = a.draws[cursor + n_drawn];
            } else {
                draw_state += warp_rng::kGolden;
                j = warp_rng::item_of(draw_state, n_items);
            }
            ++n_drawn;
            if (is_positive(a.indices, row_begin, row_end, j)) continue;
            const T b_j = representation(a, j, qj, n_vec);
            const T s = dot<T, 0>(p, qj, n_vec) + b_j;
            if (s > threshold) {
                violator = j;
                s_j = s;
                break;
            }
        }
        if (explicit_draws)
            cursor += n_drawn;
        else
            state += static_cast<uint64_t>(n_drawn) * warp_rng::kGolden;
        if (violator < 0) continue;
        const int64_t rank = (n_items - 1) / n_drawn;
        if (rank <= 1) continue;
        const double weight = std::log(static_cast<double>(rank));
        const T L = static_cast<T>(weight);
        stats.loss += weight * static_cast<double>((margin - s_i) + s_j);
        stats.updates += 1.0;
        const Vt L_v = splat<T>(L);
        Vt* ap = kAdagrad ? reinterpret_cast<Vt*>(a.P_acc + u * stride) : nullptr;
        for (int64_t v = 0; v < n_vec; ++v) {
            const Vt pv = p[v];
            pu[v] = pv;
            p[v] = step<T, kAdagrad>(pv, reg_v * pv - L_v * (qi[v] - qj[v]), kAdagrad ? ap + v : nullptr, lr_v);
        }
        for (int side = 0; side < 2; ++side) {  // the positive's features, then the violator's
            const int64_t x = side == 0 ? i : violator;
            for (int64_t e = a.feature_indptr[x]; e < a.feature_indptr[x + 1]; ++e) {
                const int64_t f = a.feature_indices[e];
                const T c = a.feature_data[e] * L;
                const Vt c_v = splat<T>(c);
                Vt* row = reinterpret_cast<Vt*>(a.E + f * stride);
                Vt* acc = kAdagrad ? reinterpret_cast<Vt*>(a.E_acc + f * stride) : nullptr;
                for (int64_t v = 0; v < n_vec; ++v) {
                    const Vt ef = row[v];
                    const Vt g = side == 0 ? reg_v * ef - c_v * pu[v] : reg_v * ef + c_v * pu[v];
                    row[v] = step<T, kAdagrad>(ef, g, kAdagrad ? acc + v : nullptr, lr_v);
                }
                const T g_b = side == 0 ? reg * a.eb[f] - c : reg * a.eb[f] + c;
                a.eb[f] = step_scalar<T, kAdagrad>(a.eb[f], g_b, kAdagrad ? a.eb_acc + f : nullptr, lr);
            }
        }
    }
    return stats;
}

}  // namespace warp_detail

template <class T>
void warp_epoch(const WarpEpochArgs<T>& a) {
    using namespace warp_detail;
    const int64_t n_chunks = a.n_draws > 0 ? 1 : std::max(1, a.n_threads);
    std::vector<ChunkStats> stats(static_cast<size_t>(n_chunks));
    auto run = [&](int64_t c) {
        const int64_t begin_at = (a.n_visits * c) / n_chunks, end_at = (a.n_visits * (c + 1)) / n_chunks;
        const uint64_t state = warp_rng::chunk_state(a.seed, c);
        stats[static_cast<size_t>(c)] = a.adagrad ? run_chunk_fixed<T, true>(a, begin_at, end_at, state)
                                                  : run_chunk_fixed<T, false>(a, begin_at, end_at, state);
    };
    if (n_chunks == 1) {
        run(0);
    } else {
#pragma omp parallel for num_threads(static_cast<int>(n_chunks)) schedule(static, 1)
        for (int64_t c = 0; c < n_chunks; ++c) run(c);
    }
    a.out_stats[0] = 0.0;
    a.out_stats[1] = 0.0;
    for (const ChunkStats& s : stats) {  // a fixed order, whatever thread ran the chunk
        a.out_stats[0] += s.loss;
        a.out_stats[1] += s.updates;
    }
    a.out_stats[2] = static_cast<double>(a.n_visits);
}

template <class T>
void warp_epoch_features(const WarpEpochFeaturesArgs<T>& a) {
    using namespace warp_detail;
    const int64_t n_chunks = a.n_draws > 0 ? 1 : std::max(1, a.n_threads);
    std::vector<ChunkStats> stats(static_cast<size_t>(n_chunks));
    bool failed = false;
    auto run = [&](int64_t c) {
        // per-thread rows of the two representations and the user's factors before its step
        auto scratch = thread_scratch<AlignedBuffer<T>>(failed, static_cast<size_t>(3 * a.stride));
        if (!scratch) return;
        V<T>* base = reinterpret_cast<V<T>*>(scratch->data());
        const int64_t n_vec = a.stride / Vec64<T>::lanes;
        const int64_t begin_at = (a.n_visits * c) / n_chunks, end_at = (a.n_visits * (c + 1)) / n_chunks;
        const uint64_t state = warp_rng::chunk_state(a.seed, c);
        stats[static_cast<size_t>(c)] =
            a.adagrad ? run_chunk_features<T, true>(a, begin_at, end_at, state, base, base + n_vec, base + 2 * n_vec)
                      : run_chunk_features<T, false>(a, begin_at, end_at, state, base, base + n_vec, base + 2 * n_vec);
    };
    if (n_chunks == 1) {
        run(0);
    } else {
#pragma omp parallel for num_threads(static_cast<int>(n_chunks)) schedule(static, 1)
        for (int64_t c = 0; c < n_chunks; ++c) run(c);
    }
    if (failed) throw std::bad_alloc();
    a.out_stats[0] = 0.0;
    a.out_stats[1] = 0.0;
    for (const ChunkStats& s : stats) {
        a.out_stats[0] += s.loss;
        a.out_stats[1] += s.updates;
    }
    a.out_stats[2] = static_cast<double>(a.n_visits);
}

}  // namespace FASTREC_ISA_NS
}  // namespace fastrec
#endif  // FASTREC_ISA_NS
