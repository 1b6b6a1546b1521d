// Bayesian Personalized Ranking (Rendle et al., 2009) by pairwise SGD.
//
//   x_ui = <p_u, q_i> + b_i
//
// Every sample (u, i, j) pairs a positive item i of user u with a negative
// item j and ascends ln sigmoid(x_ui - x_uj) with L2 penalty reg; with
// z = sigmoid(-(x_ui - x_uj)):
//
//   p_u += lr (z (q_i - q_j) - reg p_u)
//   q_i += lr (z p_u - reg q_i)          (p_u: its value before the step)
//   q_j += lr (-z p_u - reg q_j)
//   b_i += lr (z - reg b_i);  b_j += lr (-z - reg b_j)
//
// Three kernels:
//
//   bpr_draw     writes the samples an epoch draws (no SIMD, no factors);
//   bpr_samples  SGD over given samples, in their order (one thread);
//   bpr_epoch    draws n_samples samples and takes their steps.
//
// Sampling.  The samples split into n_threads contiguous chunks, one per
// thread, and each chunk into groups of `group` samples (the last one shorter).
// Chunk t draws from two splitmix64 streams keyed by (seed, t): one names the
// positives, entries uniform over the nnz stored positives (so their users and
// items), the other the negatives.  A group draws its positives first and takes
// them in ascending entry order, so by user (the entries are CSR-ordered): a
// user's row of positives and its factors are read once for the group's
// samples of that user, from cache after the first.  Chunk t starts its sweep
// at entry nnz t / n_threads and wraps around (the entries from there up, then
// those below), so that threads sweep different users at a time and do not
// fight over the same factor rows.  Then, in that order, each sample draws
// its negative, uniform over the items or, for popularity sampling, the item
// of another uniform entry; a candidate that is a positive of the user (binary
// search in the user's sorted row) is redrawn, max_tries draws at most, and a
// sample without a negative (or whose user has every item) is skipped.  Two
// streams make the draws independent of how far ahead the kernel draws, so a
// seed, a thread count and a group size fix the samples.
// Threads update the shared factors without locks (Hogwild, as in
// Recht et al. 2011): with n_threads > 1 the draws are fixed but the model is
// not; with one thread it is, bit for bit.
//
// Arithmetic.  Rows are `stride` elements, a multiple of the 64-byte vector,
// 64-byte aligned, zero after the factors.  The dot product accumulates whole
// vectors lane by lane, then adds the lanes by halving; z is computed in
// double from the rounded x; nothing is fused (the kernels below compile with
// fp-contract off).  fastrec/implicit/bpr/_reference.py and _numba.py compute
// in the same order, so every backend gives the same bits for one sample order.
//
// Speed.  bpr_epoch pipelines each group (run_chunk): a sample's entry, row
// bounds, row and factor rows are read a few samples after each was
// prefetched, and its step comes last; the negatives' draws stay in sample
// order, so the pipeline changes nothing but the stalls.
#pragma once

#include "fastrec/prelude.hpp"

namespace fastrec {

template <class T>
struct BprSamplesArgs {
    const int32_t* users;      // IN    (n) user of every sample
    const int32_t* items;      // IN    (n) positive item
    const int32_t* negatives;  // IN    (n) negative item, -1 to skip the sample
    int64_t n;                 // IN
    T* P;                      // INOUT (n_users x stride) user factors, 64-byte aligned rows
    T* Q;                      // INOUT (n_items x stride) item factors
    T* bi;                     // INOUT (n_items) item biases
    int64_t n_users, n_items;  // IN    rows of P and Q
    int64_t stride;            // IN    row length, a multiple of 64 / sizeof(T)
    double lr, reg;            // IN
    bool item_bias;            // IN    learn bi
    double* out_stats;         // OUT   (3) samples used, ranked right before their step, skipped
};

// The Python-visible arguments of bpr_samples (see csrc/bindings/fields.hpp); the
// binding also checks the factor rows and every index.
#define FASTREC_BPR_SAMPLES_FIELDS(F, A)                      \
    F(users, int32_t, IN_EXACT, A.users, (bind(A.n)))         \
    F(items, int32_t, IN_EXACT, A.items, (A.n))               \
    F(negatives, int32_t, IN_EXACT, A.negatives, (A.n))       \
    F(P, T, INOUT, A.P, (bind(A.n_users), bind(A.stride)))    \
    F(Q, T, INOUT, A.Q, (bind(A.n_items), A.stride))          \
    F(bi, T, INOUT, A.bi, (A.n_items))                        \
    F(lr, double, VALUE, A.lr, ())                            \
    F(reg, double, VALUE, A.reg, ())                          \
    F(item_bias, bool, VALUE, A.item_bias, ())                \
    F(out_stats, double, OUT, A.out_stats, (3))

// The positives as CSR: user u's items are indices[indptr[u], indptr[u+1]),
// sorted, and users[t] is the row of entry t.
struct BprPositives {
    const int64_t* indptr;  // IN (n_rows + 1)
    const int32_t* indices;  // IN (nnz)
    const int32_t* users;    // IN (nnz)
    int64_t n_rows, nnz;
};

template <class T>
struct BprEpochArgs {
    BprPositives pos;          // IN
    T* P;                      // INOUT (n_rows x stride)
    T* Q;                      // INOUT (n_items x stride)
    T* bi;                     // INOUT (n_items)
    int64_t n_items;           // IN    rows of Q: negatives are drawn from [0, n_items)
    int64_t stride;            // IN
    double lr, reg;            // IN
    bool item_bias;            // IN
    bool popularity;           // IN    negatives by item popularity, else uniform
    int64_t n_samples;         // IN
    int64_t seed;              // IN    >= 0
    int64_t max_tries;         // IN    >= 1 negative draws per sample
    double* out_stats;         // OUT   (3) as bpr_samples
    int n_threads;             // IN    >= 1: chunks and threads
    int64_t group;             // IN    >= 1 samples drawn and taken in entry order together
};

// The Python-visible arguments of bpr_epoch; the binding also checks the
// positives (bpr_check_positives) and the factor rows.
#define FASTREC_BPR_EPOCH_FIELDS(F, A)                                    \
    F(indptr, int64_t, IN_EXACT, A.pos.indptr, (bind_indptr(A.pos.n_rows))) \
    F(indices, int32_t, IN_EXACT, A.pos.indices, (bind(A.pos.nnz)))      \
    F(users, int32_t, IN_EXACT, A.pos.users, (A.pos.nnz))                 \
    F(P, T, INOUT, A.P, (A.pos.n_rows, bind(A.stride)))                   \
    F(Q, T, INOUT, A.Q, (bind(A.n_items), A.stride))                      \
    F(bi, T, INOUT, A.bi, (A.n_items))                                    \
    F(lr, double, VALUE, A.lr, ())                                        \
    F(reg, double, VALUE, A.reg, ())                                      \
    F(item_bias, bool, VALUE, A.item_bias, ())                            \
    F(popularity, bool, VALUE, A.popularity, ())                          \
    F(n_samples, int64_t, VALUE, A.n_samples, (at_least(0)))              \
    F(seed, int64_t, VALUE, A.seed, (at_least(0)))                        \
    F(max_tries, int64_t, VALUE, A.max_tries, (at_least(1)))              \
    F(out_stats, double, OUT, A.out_stats, (3))                           \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))                 \
    F(group, int64_t, VALUE, A.group, (at_least(1)))

struct BprDrawArgs {
    BprPositives pos;          // IN
    int64_t n_items;           // IN
    int64_t n_samples;         // IN
    int64_t seed;              // IN
    bool popularity;           // IN
    int64_t max_tries;         // IN
    int32_t* out_users;        // OUT (n_samples)
    int32_t* out_items;        // OUT (n_samples)
    int32_t* out_negatives;    // OUT (n_samples), -1 for a skipped sample
    int n_threads;             // IN  chunks (the thread count of bpr_epoch); drawn here on one thread
    int64_t group;             // IN  >= 1 samples a group (as bpr_epoch)
};

#define FASTREC_BPR_DRAW_FIELDS(F, A)                                       \
    F(indptr, int64_t, IN_EXACT, A.pos.indptr, (bind_indptr(A.pos.n_rows))) \
    F(indices, int32_t, IN_EXACT, A.pos.indices, (bind(A.pos.nnz)))        \
    F(users, int32_t, IN_EXACT, A.pos.users, (A.pos.nnz))                   \
    F(n_items, int64_t, VALUE, A.n_items, (at_least(1)))                    \
    F(n_samples, int64_t, VALUE, A.n_samples, (at_least(0)))                \
    F(seed, int64_t, VALUE, A.seed, (at_least(0)))                          \
    F(popularity, bool, VALUE, A.popularity, ())                            \
    F(max_tries, int64_t, VALUE, A.max_tries, (at_least(1)))                \
    F(out_users, int32_t, OUT, A.out_users, (A.n_samples))                  \
    F(out_items, int32_t, OUT, A.out_items, (A.n_samples))                  \
    F(out_negatives, int32_t, OUT, A.out_negatives, (A.n_samples))          \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))                   \
    F(group, int64_t, VALUE, A.group, (at_least(1)))

// Empty string when the positives are well formed for n_items items, else what is wrong.
inline const char* bpr_check_positives(const BprPositives& pos, int64_t n_items) {
    if (pos.nnz == 0) return "indices: expected at least one positive";
    if (pos.indptr[0] != 0 || pos.indptr[pos.n_rows] != pos.nnz) return "indptr must run from 0 to nnz";
    for (int64_t u = 0; u < pos.n_rows; ++u) {
        const int64_t begin = pos.indptr[u], end = pos.indptr[u + 1];
        if (end < begin) return "indptr must be non-decreasing";
        for (int64_t t = begin; t < end; ++t) {
            if (pos.indices[t] < 0 || pos.indices[t] >= n_items) return "indices: item out of range";
            if (t > begin && pos.indices[t] <= pos.indices[t - 1])
                return "indices: every row must be sorted, without repeats";
            if (pos.users[t] != u) return "users: users[t] must be the row of entry t";
        }
    }
    return "";
}

// The sampling streams, shared by every backend (see the header comment).  The
// sampling code has internal linkage: every unit, the AVX-512 ones included,
// compiles its own copy, so the baseline binding never links to a copy built
// for a wider target (see prelude.hpp).
namespace bpr_rng {
namespace {
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

inline uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

inline uint64_t stream(int64_t seed, int64_t key) {
    return mix(static_cast<uint64_t>(seed) + static_cast<uint64_t>(key) * kGolden);
}

// An index uniform in [0, n): 53 random bits as a double in [0, 1), times n.
inline int64_t below(uint64_t& state, int64_t n) {
    state += kGolden;
    const double u = static_cast<double>(mix(state) >> 11) * 0x1p-53;
    const int64_t index = static_cast<int64_t>(u * static_cast<double>(n));
    return index < n - 1 ? index : n - 1;
}

// Whether item is in the sorted, repeat-free indices[begin, end).  Branch-free
// halving (the compiler emits conditional moves): the draws' searches would
// mispredict about half their branches.
inline bool is_positive(const int32_t* indices, int64_t begin, int64_t end, int64_t item) {
    int64_t n = end - begin;
    if (n <= 0) return false;
    const int32_t* base = indices + begin;
    while (n > 1) {
        const int64_t half = n >> 1;
        base = base[half] <= item ? base + half : base;
        n -= half;
    }
    return *base == item;
}

// A negative of user u drawn from `state`, or -1.
inline int64_t draw_negative(uint64_t& state, const BprPositives& pos, int64_t u, int64_t n_items,
                             bool popularity, int64_t max_tries) {
    const int64_t begin = pos.indptr[u], end = pos.indptr[u + 1];
    if (end - begin >= n_items) return -1;
    for (int64_t k = 0; k < max_tries; ++k) {
        const int64_t candidate = popularity ? pos.indices[below(state, pos.nnz)] : below(state, n_items);
        if (!is_positive(pos.indices, begin, end, candidate)) return candidate;
    }
    return -1;
}

inline int64_t chunk_begin(int64_t n_samples, int64_t n_chunks, int64_t t) {
    return static_cast<int64_t>((static_cast<unsigned __int128>(n_samples) * static_cast<uint64_t>(t)) /
                                static_cast<uint64_t>(n_chunks));
}

// A group's positives: n entries uniform in [0, nnz) drawn from `state`, written
// to keys[0, n) in ascending order.  The draws are bucketed by their top bits
// (one or two per bucket: n rounded down to a power of two buckets; fewer
// buckets cost more mispredicted moves below), counted on a first pass and
// placed on a second that draws them again (cheaper than storing them), then
// insertion-sorted, which moves each only within its bucket.  count holds
// n + 2 counts.
inline void draw_sorted(uint64_t& state, int64_t nnz, int64_t n, int64_t* keys, int64_t* count) {
    int log_buckets = 0, bits = 0;
    while ((int64_t(2) << log_buckets) <= n) ++log_buckets;
    while ((static_cast<uint64_t>(nnz - 1) >> bits) != 0) ++bits;
    const int shift = bits > log_buckets ? bits - log_buckets : 0;
    const int64_t n_buckets = ((nnz - 1) >> shift) + 1;
    std::fill(count, count + n_buckets + 1, int64_t(0));
    uint64_t again = state;
    for (int64_t k = 0; k < n; ++k) ++count[(below(again, nnz) >> shift) + 1];
    for (int64_t b = 0; b < n_buckets; ++b) count[b + 1] += count[b];
    for (int64_t k = 0; k < n; ++k) {
        const int64_t key = below(state, nnz);
        keys[count[key >> shift]++] = key;
    }
    for (int64_t k = 1; k < n; ++k) {
        const int64_t key = keys[k];
        int64_t at = k;
        for (; at > 0 && keys[at - 1] > key; --at) keys[at] = keys[at - 1];
        keys[at] = key;
    }
}

// Buffers of the groups of one chunk: the sorted entries and the bucket counts.
// Uninitialised: draw_sorted writes each before it reads it.
struct GroupBuffers {
    std::unique_ptr<int64_t[]> keys, count;
    explicit GroupBuffers(int64_t group_size)
        : keys(new int64_t[static_cast<size_t>(group_size)]),
          count(new int64_t[static_cast<size_t>(group_size + 2)]) {}
    // The group's entries in the order they are taken: ascending from `start`, then from 0.
    const int64_t* draw(uint64_t& state, int64_t nnz, int64_t n, int64_t start) {
        int64_t* k = keys.get();
        draw_sorted(state, nnz, n, k, count.get());
        std::rotate(k, std::lower_bound(k, k + n, start), k + n);
        return k;
    }
};

// The most samples a group of any chunk holds (a chunk holds at most n_samples / n_chunks + 1).
inline int64_t largest_group(int64_t n_samples, int64_t n_chunks, int64_t group) {
    return std::max<int64_t>(std::min(group, n_samples / n_chunks + 1), 1);
}
}  // namespace
}  // namespace bpr_rng

namespace {
inline void bpr_draw(const BprDrawArgs& a) {
    bpr_rng::GroupBuffers buffers(bpr_rng::largest_group(a.n_samples, a.n_threads, a.group));
    for (int64_t t = 0; t < a.n_threads; ++t) {
        uint64_t positives = bpr_rng::stream(a.seed, 2 * t + 1), negatives = bpr_rng::stream(a.seed, 2 * t + 2);
        const int64_t end = bpr_rng::chunk_begin(a.n_samples, a.n_threads, t + 1);
        const int64_t start = bpr_rng::chunk_begin(a.pos.nnz, a.n_threads, t);
        for (int64_t first = bpr_rng::chunk_begin(a.n_samples, a.n_threads, t); first < end; first += a.group) {
            const int64_t n = std::min(a.group, end - first);
            const int64_t* entries = buffers.draw(positives, a.pos.nnz, n, start);
            for (int64_t k = 0; k < n; ++k) {
                const int64_t s = first + k, u = a.pos.users[entries[k]];
                a.out_users[s] = static_cast<int32_t>(u);
                a.out_items[s] = a.pos.indices[entries[k]];
                a.out_negatives[s] = static_cast<int32_t>(
                    bpr_rng::draw_negative(negatives, a.pos, u, a.n_items, a.popularity, a.max_tries));
            }
        }
    }
}
}  // namespace

}  // namespace fastrec

FASTREC_DECLARE_FOR_EACH_ISA(template <class T> void bpr_samples(const BprSamplesArgs<T>& args);
                             template <class T> void bpr_epoch(const BprEpochArgs<T>& args);)

#ifdef FASTREC_ISA_NS
#include "fastrec/simd.hpp"

// Every operation rounded on its own, as the reference computes (see the header
// comment); the build's -ffp-contract=fast would fuse multiply-adds.
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

namespace fastrec {
namespace FASTREC_ISA_NS {
namespace bpr_detail {

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

// All lanes = x (one broadcast instruction; see sgd_detail::splat in mf.hpp).
template <class T>
inline vec64_t<T> splat(T x) {
    vec64_t<T> v = {x};
    return __builtin_shuffle(v, typename LaneIndex<T>::type{});
}

// Lane 0 = the lanes added by halving: lane l plus lane l ^ h, h = lanes / 2 ... 1.
inline float lane_total(vec64_t<float> v) {
    v += __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    v += __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    v += __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
    return v[0];
}

inline double lane_total(vec64_t<double> v) {
    v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3);
    v += __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5);
    v += __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6);
    return v[0];
}

template <class T>
inline void prefetch_row(const T* row, int64_t n_bytes) {
    const char* bytes = reinterpret_cast<const char*>(row);
    for (int64_t off = 0; off < n_bytes; off += static_cast<int64_t>(kCacheLine))
        __builtin_prefetch(bytes + off, 1, 3);
}

// The step's constants in the factor dtype.
template <class T>
struct Rates {
    vec64_t<T> lr, reg;
    T lr_s, reg_s;
    Rates(double lr_, double reg_)
        : lr(splat<T>(static_cast<T>(lr_))),
          reg(splat<T>(static_cast<T>(reg_))),
          lr_s(static_cast<T>(lr_)),
          reg_s(static_cast<T>(reg_)) {}
};

// One SGD step on sample (u, i, j) over rows of n_vec vectors (kVec > 0 fixes
// it at compile time); whether x_ui > x_uj before the step.
template <class T, int kVec>
inline bool step(T* __restrict P, T* __restrict Q, T* __restrict bi, int64_t stride, int64_t u, int64_t i,
                 int64_t j, const Rates<T>& r, bool item_bias) {
    using V = vec64_t<T>;
    const int64_t n_vec = kVec > 0 ? kVec : stride / Vec64<T>::lanes;
    V* __restrict p = reinterpret_cast<V*>(P + u * stride);
    V* __restrict qi = reinterpret_cast<V*>(Q + i * stride);
    V* __restrict qj = reinterpret_cast<V*>(Q + j * stride);
    V acc = {};
    for (int64_t v = 0; v < n_vec; ++v) acc = acc + p[v] * (qi[v] - qj[v]);
    T x = lane_total(acc);
    if (item_bias) x = x + (bi[i] - bi[j]);
    const T z = static_cast<T>(1.0 / (1.0 + std::exp(static_cast<double>(x))));
    const V zv = splat<T>(z), nzv = splat<T>(-z);
    for (int64_t v = 0; v < n_vec; ++v) {
        const V pv = p[v], qiv = qi[v], qjv = qj[v];
        p[v] = pv + r.lr * (zv * (qiv - qjv) - r.reg * pv);
        qi[v] = qiv + r.lr * (zv * pv - r.reg * qiv);
        qj[v] = qjv + r.lr * (nzv * pv - r.reg * qjv);
    }
    if (item_bias) {
        const T b_i = bi[i], b_j = bi[j];
        bi[i] = b_i + r.lr_s * (z - r.reg_s * b_i);
        bi[j] = b_j + r.lr_s * (-z - r.reg_s * b_j);
    }
    return x > 0;
}

struct Counts {
    int64_t used = 0, right = 0, skipped = 0;
};

// The pipeline of a group: sample s fetches its entry at step s, reads its
// user and item kAhead steps later, its row bounds 2 kAhead later, draws its
// negative 3 kAhead later and takes its SGD step 4 kAhead later; each stage
// prefetches what the next one reads.
constexpr int64_t kAhead = 4;
constexpr int64_t kRing = 32;  // a power of two > 4 kAhead

// Prefetches the lines of the sorted row [begin, end) that a binary search
// reads: all of a row of up to 128 lines (taken in entry order, a group's rows
// follow each other in memory), else the first four levels.
inline void prefetch_search(const int32_t* indices, int64_t begin, int64_t end) {
    constexpr int64_t per_line = static_cast<int64_t>(kCacheLine / sizeof(int32_t));
    const int64_t n = end - begin;
    if (n <= 128 * per_line) {
        for (int64_t t = begin; t < end; t += per_line) __builtin_prefetch(indices + t, 0, 3);
    } else {
        for (int64_t q = 1; q < 16; ++q) __builtin_prefetch(indices + begin + n * q / 16, 0, 3);
    }
}

// One chunk of an epoch, group by group, each pipelined (see the header comment).
template <class T, int kVec>
Counts run_chunk(const BprEpochArgs<T>& a, int64_t t, bpr_rng::GroupBuffers& buffers) {
    struct Slot {
        int64_t u, i, j, begin, end;
    };
    Slot ring[kRing];
    const BprPositives& pos = a.pos;
    const Rates<T> rates(a.lr, a.reg);
    const int64_t row_bytes = a.stride * static_cast<int64_t>(sizeof(T));
    uint64_t positives = bpr_rng::stream(a.seed, 2 * t + 1), negatives = bpr_rng::stream(a.seed, 2 * t + 2);
    const int64_t begin = bpr_rng::chunk_begin(a.n_samples, a.n_threads, t);
    const int64_t end = bpr_rng::chunk_begin(a.n_samples, a.n_threads, t + 1);
    const int64_t start = bpr_rng::chunk_begin(pos.nnz, a.n_threads, t);
    Counts c;
    for (int64_t first = begin; first < end; first += a.group) {
        const int64_t n = std::min(a.group, end - first);
        const int64_t* entries = buffers.draw(positives, pos.nnz, n, start);
        for (int64_t s = 0; s < n + 4 * kAhead; ++s) {
            if (s < n) {  // fetch the entry
                __builtin_prefetch(pos.users + entries[s], 0, 3);
                __builtin_prefetch(pos.indices + entries[s], 0, 3);
            }
            const int64_t s1 = s - kAhead;
            if (s1 >= 0 && s1 < n) {  // its user and item; fetch the row bounds and two rows
                Slot& x = ring[s1 & (kRing - 1)];
                x.u = pos.users[entries[s1]];
                x.i = pos.indices[entries[s1]];
                __builtin_prefetch(pos.indptr + x.u, 0, 3);
                prefetch_row(a.P + x.u * a.stride, row_bytes);
                prefetch_row(a.Q + x.i * a.stride, row_bytes);
            }
            const int64_t s2 = s - 2 * kAhead;
            if (s2 >= 0 && s2 < n) {  // the row bounds; fetch what the search reads
                Slot& x = ring[s2 & (kRing - 1)];
                x.begin = pos.indptr[x.u];
                x.end = pos.indptr[x.u + 1];
                if (s2 == 0 || x.u != ring[(s2 - 1) & (kRing - 1)].u)  // once per run of one user
                    prefetch_search(pos.indices, x.begin, x.end);
            }
            const int64_t s3 = s - 3 * kAhead;
            if (s3 >= 0 && s3 < n) {  // draw the negative; fetch its row
                Slot& x = ring[s3 & (kRing - 1)];
                x.j = bpr_rng::draw_negative(negatives, pos, x.u, a.n_items, a.popularity, a.max_tries);
                if (x.j >= 0) {
                    prefetch_row(a.Q + x.j * a.stride, row_bytes);
                    if (a.item_bias) {
                        __builtin_prefetch(a.bi + x.i, 1, 3);
                        __builtin_prefetch(a.bi + x.j, 1, 3);
                    }
                }
            }
            const int64_t s4 = s - 4 * kAhead;
            if (s4 >= 0) {
                const Slot& x = ring[s4 & (kRing - 1)];
                if (x.j < 0) {
                    ++c.skipped;
                } else {
                    c.right += step<T, kVec>(a.P, a.Q, a.bi, a.stride, x.u, x.i, x.j, rates, a.item_bias);
                    ++c.used;
                }
            }
        }
    }
    return c;
}

template <class T, int kVec>
void run_epoch(const BprEpochArgs<T>& a) {
    std::vector<Counts> counts(static_cast<size_t>(a.n_threads));
    // Allocated here: a failed allocation then raises, where in the parallel region it would end the process.
    const int64_t largest = bpr_rng::largest_group(a.n_samples, a.n_threads, a.group);
    std::vector<bpr_rng::GroupBuffers> buffers;
    buffers.reserve(static_cast<size_t>(a.n_threads));
    for (int t = 0; t < a.n_threads; ++t) buffers.emplace_back(largest);
#pragma omp parallel for num_threads(a.n_threads) schedule(static, 1)
    for (int64_t t = 0; t < a.n_threads; ++t)
        counts[static_cast<size_t>(t)] = run_chunk<T, kVec>(a, t, buffers[static_cast<size_t>(t)]);
    Counts total;
    for (const Counts& c : counts) {
        total.used += c.used;
        total.right += c.right;
        total.skipped += c.skipped;
    }
    a.out_stats[0] = static_cast<double>(total.used);
    a.out_stats[1] = static_cast<double>(total.right);
    a.out_stats[2] = static_cast<double>(total.skipped);
}

// Rows of up to kMaxFixedVec vectors (128 float or 64 double factors) get the
// length fixed at compile time, so the row loops unroll; longer rows run the
// run-time loop.
constexpr int kMaxFixedVec = 8;

template <class T, int kVec = 1>
void run_epoch_fixed(const BprEpochArgs<T>& a) {
    if constexpr (kVec > kMaxFixedVec) {
        run_epoch<T, 0>(a);
    } else {
        if (a.stride == kVec * Vec64<T>::lanes) return run_epoch<T, kVec>(a);
        run_epoch_fixed<T, kVec + 1>(a);
    }
}

}  // namespace bpr_detail

template <class T>
void bpr_samples(const BprSamplesArgs<T>& a) {
    using namespace bpr_detail;
    const Rates<T> rates(a.lr, a.reg);
    Counts c;
    for (int64_t s = 0; s < a.n; ++s) {
        if (a.negatives[s] < 0) {
            ++c.skipped;
            continue;
        }
        c.right += step<T, 0>(a.P, a.Q, a.bi, a.stride, a.users[s], a.items[s], a.negatives[s], rates, a.item_bias);
        ++c.used;
    }
    a.out_stats[0] = static_cast<double>(c.used);
    a.out_stats[1] = static_cast<double>(c.right);
    a.out_stats[2] = static_cast<double>(c.skipped);
}

template <class T>
void bpr_epoch(const BprEpochArgs<T>& a) {
    bpr_detail::run_epoch_fixed<T>(a);
}

}  // namespace FASTREC_ISA_NS
}  // namespace fastrec

#pragma GCC pop_options
#endif  // FASTREC_ISA_NS
