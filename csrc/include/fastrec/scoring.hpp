// Exact top-N scoring of factor models.
//
// For every query row u_q of U (queries x f) the kernel keeps the n items i
// with the largest score u_q . v_i (V is items x f): best first, ties to the
// smaller item index, skipping the query's excluded items and, optionally,
// looking only at the query's own candidates.  The queries x items score
// matrix never exists.
//
// Every item a candidate (the common case): V is packed once into panels of
// items stored feature-major, and a tile of queries, kept in L2, is scored
// panel by panel by a register-blocked micro-kernel: kRows queries against one
// panel, every accumulator in a register (the scheme of gemm_tile.hpp, on
// vectors of the target's native width: GCC keeps gemm_tile's 64-byte vectors
// in memory below AVX-512).  Each micro-tile's accumulators go straight into
// the selection: one vector compare per accumulator against the query's
// threshold (the score of the worst of its n kept items) rejects almost every
// score.  Only rows with a lane above it reach the scalar path, which skips
// excluded items (a cursor walks the query's sorted exclusion list forwards,
// O(1) amortised per hit) and updates the query's kept list.  On random scores
// a query keeps about n (1 + ln(items / n)) items over the whole scan (about
// 80 for n = 10 among 10,677 items), so the scalar path runs a few dozen
// times per query; measured at n = 10, f = 64 under AVX-512 it takes about a
// quarter of the time, the GEMM the rest.
//
// Per-query candidates: each query walks its sorted candidate list (merged
// with its exclusion list) and takes one SIMD dot product per candidate.
//
// Why a strict compare is exact: a query meets its items in increasing index
// order, so an item whose score equals the threshold has a larger index than
// every kept item and ranks after all of them.  Until n items are kept the
// threshold is -inf, so a score that is NaN or -inf (reachable only through
// overflow) is never kept.
//
// Determinism: each query is scored by one thread, with one fixed order of
// operations per score whatever the tile it falls in, so the output is
// bit-identical for any thread count.
#pragma once

#include "fastrec/prelude.hpp"

namespace fastrec {

// Inputs and outputs of one call; every array is owned by the caller.
template <class T, class I>
struct TopnArgs {
    const T* u = nullptr;                      // IN  n_queries x f, row-major
    const T* v = nullptr;                      // IN  n_items x f, row-major
    int64_t n_queries = 0, n_items = 0, f = 0;  // IN
    const int64_t* exclude_indptr = nullptr;   // IN  n_queries + 1, or nullptr: nothing excluded
    const I* exclude_indices = nullptr;        // IN  excluded items of each query, sorted, unique
    const int64_t* cand_indptr = nullptr;      // IN  n_queries + 1, or nullptr: every item is a candidate
    const I* cand_indices = nullptr;           // IN  candidates of each query, sorted, unique, < n_items
    int64_t n = 0;                             // IN  results per query (>= 1)
    I* out_indices = nullptr;                  // OUT n_queries x n, best first, padded with -1
    T* out_scores = nullptr;                   // OUT n_queries x n, padded with -inf
    int n_threads = 1;                         // IN  OpenMP threads (>= 1)
};

// The Python-visible arguments of topn, in call order, with their checks (see
// csrc/bindings/fields.hpp).  An empty indptr means no exclusions / every item a
// candidate; the binding checks that candidates index rows of v.
#define FASTREC_TOPN_FIELDS(F, A)                                                     \
    F(u, T, IN, A.u, (bind(A.n_queries), bind(A.f)))                                  \
    F(v, T, IN, A.v, (bind(A.n_items), A.f))                                          \
    F(exclude_indptr, int64_t, IN, A.exclude_indptr, (optional(A.n_queries + 1)))     \
    F(exclude_indices, I, IN, A.exclude_indices,                                      \
      (when(A.exclude_indptr != nullptr), indptr_end(A.exclude_indptr, A.n_queries))) \
    F(cand_indptr, int64_t, IN, A.cand_indptr, (optional(A.n_queries + 1)))           \
    F(cand_indices, I, IN, A.cand_indices,                                            \
      (when(A.cand_indptr != nullptr), indptr_end(A.cand_indptr, A.n_queries)))       \
    F(out_indices, I, OUT, A.out_indices, (A.n_queries, bind_nonempty(A.n)))          \
    F(out_scores, T, OUT, A.out_scores, (A.n_queries, A.n))                           \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))

}  // namespace fastrec

FASTREC_DECLARE_FOR_EACH_ISA(template <class T, class I> void topn(const TopnArgs<T, I>& args);)

#ifdef FASTREC_ISA_NS
#include "fastrec/topk.hpp"

// The SIMD level of the enclosing unit, for the preprocessor.  The units
// switch their target with a pragma, which does not define __AVX512F__ and
// friends in C++, so the level is looked up by the ISA namespace's name.
#define FASTREC_SCORING_CAT2(a, b) a##b
#define FASTREC_SCORING_CAT(a, b) FASTREC_SCORING_CAT2(a, b)
#define FASTREC_SCORING_LEVEL_avx512 2
#define FASTREC_SCORING_LEVEL_avx2 1
#define FASTREC_SCORING_LEVEL_baseline 0
#define FASTREC_SCORING_LEVEL FASTREC_SCORING_CAT(FASTREC_SCORING_LEVEL_, FASTREC_ISA_NS)
#if defined(__x86_64__) || defined(__i386__)
#define FASTREC_SCORING_X86 1
#else
#define FASTREC_SCORING_X86 0
#endif

namespace fastrec {
namespace FASTREC_ISA_NS {
namespace scoring_detail {

// The micro-kernel works on vectors of the target's native width (a zmm, ymm
// or xmm register).  The 64-byte vectors of simd.hpp are split into several
// registers below AVX-512, and GCC then keeps a register-blocked tile's
// accumulators in memory.
#if FASTREC_SCORING_LEVEL == 2
constexpr int kVectorBytes = 64;
constexpr int kRows = 8, kVecs = 3;  // 24 zmm accumulators + 3 panel vectors + 1 broadcast of 32
#elif FASTREC_SCORING_LEVEL == 1
constexpr int kVectorBytes = 32;
constexpr int kRows = 6, kVecs = 2;  // 12 ymm accumulators + 2 + 1 of 16
#else
constexpr int kVectorBytes = 16;
constexpr int kRows = 4, kVecs = 2;  // 8 xmm accumulators + 2 + 1 + a product (no FMA) of 16
#endif

template <class T>
struct Native {
    static constexpr int lanes = kVectorBytes / static_cast<int>(sizeof(T));
    typedef T type __attribute__((vector_size(kVectorBytes), aligned(kVectorBytes)));
};
template <class T>
using nvec_t = typename Native<T>::type;

// Items per packed panel of V: kVecs vectors.
template <class T>
constexpr int kPanelWidth = kVecs * Native<T>::lanes;

// `x` in every lane (x - 0 is x for every x, -0 and NaN included, and GCC
// folds it into one broadcast).
template <class T>
inline nvec_t<T> splat(T x) {
    return x - nvec_t<T>{};
}

// Bit `lane` set where a[lane] > b[lane] (never for NaN).  GCC's vector
// extensions have no "any lane" test, so this uses the target's
// compare-to-mask instructions.
inline uint32_t greater_mask(const nvec_t<float>& a, const nvec_t<float>& b) {
#if FASTREC_SCORING_X86 && FASTREC_SCORING_LEVEL == 2
    return _mm512_cmp_ps_mask((__m512)a, (__m512)b, _CMP_GT_OQ);
#elif FASTREC_SCORING_X86 && FASTREC_SCORING_LEVEL == 1
    return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps((__m256)a, (__m256)b, _CMP_GT_OQ)));
#elif FASTREC_SCORING_X86 && defined(__SSE2__)
    return static_cast<uint32_t>(_mm_movemask_ps(_mm_cmpgt_ps((__m128)a, (__m128)b)));
#else
    uint32_t bits = 0;
    for (int lane = 0; lane < Native<float>::lanes; ++lane)
        bits |= static_cast<uint32_t>(a[lane] > b[lane]) << lane;
    return bits;
#endif
}

inline uint32_t greater_mask(const nvec_t<double>& a, const nvec_t<double>& b) {
#if FASTREC_SCORING_X86 && FASTREC_SCORING_LEVEL == 2
    return _mm512_cmp_pd_mask((__m512d)a, (__m512d)b, _CMP_GT_OQ);
#elif FASTREC_SCORING_X86 && FASTREC_SCORING_LEVEL == 1
    return static_cast<uint32_t>(_mm256_movemask_pd(_mm256_cmp_pd((__m256d)a, (__m256d)b, _CMP_GT_OQ)));
#elif FASTREC_SCORING_X86 && defined(__SSE2__)
    return static_cast<uint32_t>(_mm_movemask_pd(_mm_cmpgt_pd((__m128d)a, (__m128d)b)));
#else
    uint32_t bits = 0;
    for (int lane = 0; lane < Native<double>::lanes; ++lane)
        bits |= static_cast<uint32_t>(a[lane] > b[lane]) << lane;
    return bits;
#endif
}

// Packs the m x f row-major V into panels of kPanelWidth items, each stored
// feature-major (panel[t * W + j] = V[first + j, t]) so that the micro-kernel
// reads whole aligned vectors; items past m are zero.
template <class T>
void pack_panels(const T* v, int64_t m, int64_t f, T* out, int n_threads) {
    constexpr int W = kPanelWidth<T>;
    const int64_t panels = (m + W - 1) / W;
#pragma omp parallel for schedule(static) num_threads(n_threads)
    for (int64_t p = 0; p < panels; ++p) {
        T* panel = out + p * f * W;
        for (int j = 0; j < W; ++j) {
            const int64_t item = p * W + j;
            for (int64_t t = 0; t < f; ++t) panel[t * W + j] = item < m ? v[item * f + t] : T(0);
        }
    }
}

// acc[r][v] = the scores of kRows queries (rows of `u`, stride f) against the
// kPanelWidth items of one panel: for every feature t in order, one broadcast
// of u[r][t] and one FMA per accumulator, all accumulators in registers.
template <class T>
inline void dot_tile(const T* __restrict u, const T* __restrict panel, int64_t f,
                     nvec_t<T> (&acc)[kRows][kVecs]) {
    using V = nvec_t<T>;
#pragma GCC unroll 16
    for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 16
        for (int v = 0; v < kVecs; ++v) acc[r][v] = V{};
    for (int64_t t = 0; t < f; ++t) {
        const V* b = reinterpret_cast<const V*>(panel + t * kPanelWidth<T>);
        V bv[kVecs];
#pragma GCC unroll 16
        for (int v = 0; v < kVecs; ++v) bv[v] = b[v];
#pragma GCC unroll 16
        for (int r = 0; r < kRows; ++r) {
            const V a = splat(u[r * f + t]);
#pragma GCC unroll 16
            for (int v = 0; v < kVecs; ++v) acc[r][v] += a * bv[v];
        }
    }
}

// Up to this many results per query are kept in a sorted array (an insertion
// shifts n / 2 entries on average but mispredicts one branch); more go through
// a heap (log n sift steps, each a mispredicted branch half of the time).
constexpr int64_t kSortedMax = 64;

// Under AVX-512, up to kSmall float32 results with int32 indices live in one
// zmm-sized vector each (in scratch), and an insertion is a handful of
// branch-free vector operations instead of a loop whose exit mispredicts; it
// measured about 5% faster overall at n = 10.  Split over several narrower
// registers the same code is slower than the scalar loop, so other levels
// and types keep the loop.
constexpr int64_t kSmall = 16;

template <class T, class I>
constexpr bool use_small(int64_t capacity) {
    return FASTREC_SCORING_LEVEL == 2 && sizeof(T) == 4 && sizeof(I) == 4 && capacity <= kSmall;
}

template <class T, class I>
struct SmallTop {
    using Mask = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
    using IMask = std::conditional_t<sizeof(I) == 4, int32_t, int64_t>;
    typedef T SV __attribute__((vector_size(kSmall * sizeof(T))));
    typedef I IV __attribute__((vector_size(kSmall * sizeof(I))));
    typedef Mask SM __attribute__((vector_size(kSmall * sizeof(Mask))));
    typedef IMask IM __attribute__((vector_size(kSmall * sizeof(IMask))));

    // Inserts (score, item) into the sorted (best first, -inf padded) lanes:
    // lanes that rank before it stay, it takes the next lane, the rest move
    // down one lane and the last drops out.
    static inline void insert(T* scores, I* indices, T score, I item) {
        SV k;
        IV ix;
        std::memcpy(&k, scores, sizeof k);
        std::memcpy(&ix, indices, sizeof ix);
        const SM shift = {0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
        const IM ishift = {0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
        const SM first = {-1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        const SM before = k >= (score - SV{});
        const SM before_prev = __builtin_shuffle(before, shift) | first;
        const SV k_down = __builtin_shuffle(k, shift);
        const IV ix_down = __builtin_shuffle(ix, ishift);
        const IM ibefore = __builtin_convertvector(before, IM);
        const IM ibefore_prev = __builtin_convertvector(before_prev, IM);
        k = before ? k : (before_prev ? (score - SV{}) : k_down);
        ix = ibefore ? ix : (ibefore_prev ? (item - IV{}) : ix_down);
        std::memcpy(scores, &k, sizeof k);
        std::memcpy(indices, &ix, sizeof ix);
    }
};

// The selection state of one query.  By capacity (n, at most the number of
// items) its kept entries live in one of three places: 16 sorted vector lanes
// in scratch (the small mode above), a sorted array in the query's output
// row (up to kSortedMax), or a heap in scratch.
template <class T, class I>
struct Query {
    T* scores;        // the query's row of out_scores: kept entries, best first (sorted mode)
    I* indices;       // the query's row of out_indices
    TopK<T, I> heap;  // heap mode
    T* small_scores;  // small mode: kSmall lanes, best first, -inf padded
    I* small_indices;
    int64_t size;     // entries kept (sorted and small modes)
    T threshold;     // a score must beat this to be kept: -inf until `capacity` items are kept
    int64_t excl_pos, excl_end;  // unread part of the exclusion list; equal when nothing is excluded

    // True when `item` is excluded.  Items must be asked about in increasing
    // order: the cursor only moves forwards.
    inline bool excluded(const I* excl, int64_t item) {
        while (excl_pos < excl_end && static_cast<int64_t>(excl[excl_pos]) < item) ++excl_pos;
        return excl_pos < excl_end && static_cast<int64_t>(excl[excl_pos]) == item;
    }

    // Keeps (score, item) unless the item is excluded.  The caller has checked
    // score > threshold, and items arrive in increasing order, so every kept
    // entry whose score ties `score` has a smaller index and stays ahead of it.
    inline void offer(const I* excl, int64_t capacity, T score, int64_t item) {
        if (excluded(excl, item)) return;
        if (capacity > kSortedMax) {
            heap.push(score, static_cast<I>(item));
            threshold = heap.threshold();
            return;
        }
        if (use_small<T, I>(capacity)) {
            SmallTop<T, I>::insert(small_scores, small_indices, score, static_cast<I>(item));
            if (size < capacity) ++size;
            if (size == capacity) threshold = small_scores[capacity - 1];
            return;
        }
        int64_t pos = size < capacity ? size++ : capacity - 1;  // when full, the last entry drops out
        while (pos > 0 && scores[pos - 1] < score) {
            scores[pos] = scores[pos - 1];
            indices[pos] = indices[pos - 1];
            --pos;
        }
        scores[pos] = score;
        indices[pos] = static_cast<I>(item);
        if (size == capacity) threshold = scores[capacity - 1];
    }
};

// Per-thread scratch: the selection state of a tile of queries.
template <class T, class I>
struct Scratch {
    std::vector<Query<T, I>> queries;
    AlignedBuffer<T> heap_scores;  // rows x capacity in heap mode
    AlignedBuffer<I> heap_indices;
    AlignedBuffer<T> small_scores;  // rows x kSmall in small mode
    AlignedBuffer<I> small_indices;
    AlignedBuffer<T> tail;  // kRows x f: the last, partial micro-tile of U, padded

    Scratch(int64_t rows, int64_t capacity, int64_t f)
        : queries(static_cast<std::size_t>(rows)),
          heap_scores(static_cast<std::size_t>(capacity > kSortedMax ? rows * capacity : 0)),
          heap_indices(static_cast<std::size_t>(capacity > kSortedMax ? rows * capacity : 0)),
          small_scores(static_cast<std::size_t>(use_small<T, I>(capacity) ? rows * kSmall : 0)),
          small_indices(static_cast<std::size_t>(use_small<T, I>(capacity) ? rows * kSmall : 0)),
          tail(static_cast<std::size_t>(kRows * std::max<int64_t>(f, 1))) {}

    // Empty selections, -inf thresholds and exclusion cursors for queries
    // [q0, q0 + rows); their exclusion lists are prefetched, as the scalar
    // path will read them (cold misses otherwise: they are read once).
    void start(const TopnArgs<T, I>& a, int64_t capacity, int64_t q0, int64_t rows) {
        for (int64_t i = 0; i < rows; ++i) {
            Query<T, I>& s = queries[i];
            s.scores = a.out_scores + (q0 + i) * a.n;
            s.indices = a.out_indices + (q0 + i) * a.n;
            if (capacity > kSortedMax)
                s.heap = TopK<T, I>(heap_scores.data() + i * capacity, heap_indices.data() + i * capacity,
                                    capacity);
            if (use_small<T, I>(capacity)) {
                s.small_scores = small_scores.data() + i * kSmall;
                s.small_indices = small_indices.data() + i * kSmall;
                for (int64_t j = 0; j < kSmall; ++j) {
                    s.small_scores[j] = -std::numeric_limits<T>::infinity();
                    s.small_indices[j] = I(-1);
                }
            }
            s.size = 0;
            s.threshold = -std::numeric_limits<T>::infinity();
            s.excl_pos = a.exclude_indptr ? a.exclude_indptr[q0 + i] : 0;
            s.excl_end = a.exclude_indptr ? a.exclude_indptr[q0 + i + 1] : 0;
        }
        if (a.exclude_indptr) {
            const char* begin = reinterpret_cast<const char*>(a.exclude_indices + a.exclude_indptr[q0]);
            const char* end = reinterpret_cast<const char*>(a.exclude_indices + a.exclude_indptr[q0 + rows]);
            for (const char* line = begin; line < end; line += kCacheLine) __builtin_prefetch(line, 0, 2);
        }
    }

    // Writes out the heaps (heap mode) and pads every row after its kept entries.
    void finish(const TopnArgs<T, I>& a, int64_t capacity, int64_t rows) {
        for (int64_t i = 0; i < rows; ++i) {
            Query<T, I>& s = queries[i];
            if (capacity > kSortedMax) s.size = s.heap.drain_sorted(s.scores, s.indices);
            if (use_small<T, I>(capacity))
                for (int64_t j = 0; j < s.size; ++j) {
                    s.scores[j] = s.small_scores[j];
                    s.indices[j] = s.small_indices[j];
                }
            for (int64_t j = s.size; j < a.n; ++j) {
                s.scores[j] = -std::numeric_limits<T>::infinity();
                s.indices[j] = I(-1);
            }
        }
    }
};

// Queries of U kept in L2 while one panel of V (in L1) streams over them, and
// at least four tiles per thread when there are enough queries, so that the
// dynamic schedule can balance.  The tile size never changes a result.
template <class T>
int64_t tile_rows(int64_t f, int64_t n_queries, int n_threads) {
    constexpr int64_t kTileBytes = 128 * 1024, kMaxRows = 512;
    constexpr int64_t R = kRows;
    const int64_t fit = kTileBytes / std::max<int64_t>(1, f * static_cast<int64_t>(sizeof(T)));
    const int64_t balanced = (n_queries + 4 * n_threads - 1) / (4 * static_cast<int64_t>(n_threads));
    const int64_t rows = std::max<int64_t>(R, std::min({fit, kMaxRows, balanced}));
    return (rows + R - 1) / R * R;
}

// The scalar path of score_all_items: `count` rows of one micro-tile had a
// score above their query's threshold; their accumulators are stored in
// `block` (kPanelWidth each, lane j is item first + j) and `rows[k]` is the
// row of block k within the micro-tile (queries[rows[k]] is its query).
// Every score above the query's threshold is offered in item order.  Called
// once the micro-tile's accumulators are dead, so nothing is saved around it.
template <class T, class I>
__attribute__((noinline)) void offer_rows(Query<T, I>* queries, const I* excl, int64_t capacity,
                                          const T* block, const int* rows, int count, int64_t first,
                                          uint64_t lanes_mask) {
    using V = nvec_t<T>;
    constexpr int L = Native<T>::lanes;
    constexpr int W = kPanelWidth<T>;
    for (int k = 0; k < count; ++k) {
        Query<T, I>& qs = queries[rows[k]];
        const T* row = block + k * W;
        const V threshold = splat(qs.threshold);
        uint64_t hits = 0;
        for (int v = 0; v < kVecs; ++v)
            hits |= static_cast<uint64_t>(greater_mask(*reinterpret_cast<const V*>(row + v * L), threshold))
                    << (v * L);
        hits &= lanes_mask;
        while (hits != 0) {
            const int lane = __builtin_ctzll(hits);
            hits &= hits - 1;
            // The threshold rises as items are kept, so it is read afresh.
            if (row[lane] > qs.threshold) qs.offer(excl, capacity, row[lane], first + lane);
        }
    }
}

// Scores queries [q0, q0 + rows) against every item (packed into panels).
template <class T, class I>
void score_all_items(const TopnArgs<T, I>& a, const T* packed, int64_t q0, int64_t rows,
                     Scratch<T, I>& s) {
    using V = nvec_t<T>;
    constexpr int L = Native<T>::lanes;
    constexpr int R = kRows;
    constexpr int NV = kVecs;
    constexpr int W = kPanelWidth<T>;
    static_assert(W <= 64, "a panel's lanes must fit one 64-bit hit mask");
    const int64_t f = a.f;
    const int64_t capacity = std::min(a.n, a.n_items);
    const int64_t panels = (a.n_items + W - 1) / W;
    const int64_t full = (rows / R) * R;
    const I* excl = a.exclude_indices;
    Query<T, I>* queries = s.queries.data();
    if (full < rows) {  // pad the last micro-tile by repeating its last row
        for (int r = 0; r < R; ++r) {
            const int64_t src = q0 + std::min<int64_t>(full + r, rows - 1);
            std::memcpy(s.tail.data() + r * f, a.u + src * f, sizeof(T) * f);
        }
    }
    V acc[R][NV];
    for (int64_t p = 0; p < panels; ++p) {
        const T* panel = packed + p * f * W;
        const int64_t first = p * W;
        // Lanes of this panel that hold items (the last panel is zero-padded).
        const int64_t valid = std::min<int64_t>(W, a.n_items - first);
        const uint64_t lanes_mask = valid == 64 ? ~uint64_t(0) : (uint64_t(1) << valid) - 1;
        for (int64_t g = 0; g < rows; g += R) {
            const bool partial = g >= full;
            dot_tile<T>(partial ? s.tail.data() : a.u + (q0 + g) * f, panel, f, acc);
            const int nr = partial ? static_cast<int>(rows - g) : R;
            // Rows with a score above their query's threshold (rare) are set
            // aside and handled after the micro-tile, out of line.
            alignas(64) T block[R * W];
            int hit_rows[R];
            int count = 0;
#pragma GCC unroll 16
            for (int r = 0; r < R; ++r) {
                if (r >= nr) break;
                const V threshold = splat(queries[g + r].threshold);
                uint32_t any = 0;
#pragma GCC unroll 16
                for (int v = 0; v < NV; ++v) any |= greater_mask(acc[r][v], threshold);
                if (__builtin_expect(any != 0, 0)) {
#pragma GCC unroll 16
                    for (int v = 0; v < NV; ++v)
                        *reinterpret_cast<V*>(block + count * W + v * L) = acc[r][v];
                    hit_rows[count++] = r;
                }
            }
            if (count != 0)
                offer_rows<T, I>(queries + g, excl, capacity, block, hit_rows, count, first, lanes_mask);
        }
    }
}

// <x, y> over f values: whole native vectors (unaligned loads), their lanes
// summed pairwise, then the tail in order.
template <class T>
inline T dot_row(const T* __restrict x, const T* __restrict y, int64_t f) {
    using V = nvec_t<T>;
    constexpr int L = Native<T>::lanes;
    const int64_t whole = (f / L) * L;
    V acc = V{};
    for (int64_t t = 0; t < whole; t += L) {
        V xv, yv;
        std::memcpy(&xv, x + t, sizeof xv);
        std::memcpy(&yv, y + t, sizeof yv);
        acc += xv * yv;
    }
    alignas(64) T lanes[L];
    std::memcpy(lanes, &acc, sizeof lanes);
#pragma GCC unroll 8
    for (int width = L / 2; width > 0; width /= 2)
#pragma GCC unroll 16
        for (int lane = 0; lane < width; ++lane) lanes[lane] += lanes[lane + width];
    T sum = lanes[0];
    for (int64_t t = whole; t < f; ++t) sum += x[t] * y[t];
    return sum;
}

// Scores query q against its own candidates (increasing item order).
template <class T, class I>
void score_candidates(const TopnArgs<T, I>& a, int64_t q, Query<T, I>& qs) {
    const T* uq = a.u + q * a.f;
    const int64_t capacity = std::min(a.n, a.n_items);
    const I* excl = a.exclude_indices;
    for (int64_t p = a.cand_indptr[q]; p < a.cand_indptr[q + 1]; ++p) {
        const int64_t item = static_cast<int64_t>(a.cand_indices[p]);
        const T score = dot_row(uq, a.v + item * a.f, a.f);
        if (score > qs.threshold) qs.offer(excl, capacity, score, item);
    }
}

}  // namespace scoring_detail

template <class T, class I>
void topn(const TopnArgs<T, I>& a) {
    using namespace scoring_detail;
    if (a.n_queries == 0) return;
    const int64_t capacity = std::min(a.n, a.n_items);
    const bool all_items = a.cand_indptr == nullptr;
    const int64_t rows = all_items ? tile_rows<T>(a.f, a.n_queries, a.n_threads) : int64_t(64);
    const int64_t n_tiles = (a.n_queries + rows - 1) / rows;

    constexpr int W = kPanelWidth<T>;
    AlignedBuffer<T> packed;
    if (all_items && capacity > 0) {
        packed.allocate(static_cast<std::size_t>((a.n_items + W - 1) / W * W * a.f));
        pack_panels<T>(a.v, a.n_items, a.f, packed.data(), a.n_threads);
    }
    bool failed = false;
#pragma omp parallel num_threads(a.n_threads)
    {
        std::unique_ptr<Scratch<T, I>> scratch = thread_scratch<Scratch<T, I>>(failed, rows, capacity, a.f);
#pragma omp for schedule(dynamic, 1)
        for (int64_t tile = 0; tile < n_tiles; ++tile) {
            if (!scratch) continue;
            const int64_t q0 = tile * rows;
            const int64_t nq = std::min(rows, a.n_queries - q0);
            scratch->start(a, capacity, q0, nq);
            if (capacity > 0) {
                if (all_items)
                    score_all_items(a, packed.data(), q0, nq, *scratch);
                else
                    for (int64_t i = 0; i < nq; ++i) score_candidates(a, q0 + i, scratch->queries[i]);
            }
            scratch->finish(a, capacity, nq);
        }
    }
    if (failed) throw std::bad_alloc();
}

}  // namespace FASTREC_ISA_NS
}  // namespace fastrec
#endif  // FASTREC_ISA_NS
