// Ranking metrics at k of a recommendation table against held-out relevant items.
//
// For user u with relevant test items T_u (row u of a canonical CSR: sorted,
// unique indices) and recommendation list L_u = recs[u, 0:k] (-1 = empty slot),
// rel_p = 1 when L_u[p] is in T_u:
//
//   hits      = sum_p rel_p
//   precision = hits / k
//   recall    = hits / |T_u|
//   f1        = 2 precision recall / (precision + recall), 0 without hits
//   ndcg      = sum_p rel_p / log2(p + 2)  /  sum_{p < min(k, |T_u|)} 1 / log2(p + 2)
//   ap        = sum_p rel_p (hits among the first p + 1) / (p + 1)  /  min(k, |T_u|)
//   hit       = 1 if hits > 0
//
// written to out[u, 0:6] in that order (precision, recall, f1, ndcg, ap, hit);
// a user with no test item gets NaN in every column (callers exclude them from
// the means).  Membership is a binary search in T_u.  Every item of the first k
// slots of every row is also flagged in out_recommended (catalogue coverage).
// Rows are independent, so the output does not depend on the thread count.
#pragma once

#include "fastrec/prelude.hpp"

namespace fastrec {

inline constexpr int kRankingMetrics = 6;

template <class I>
struct RankingMetricsArgs {
    const int64_t* recs;          // IN  (n_users x width) item indices, -1 = empty slot
    int64_t n_users;              // IN
    int64_t width;                // IN  columns of recs (>= k)
    int64_t k;                    // IN  slots evaluated (>= 1)
    const int64_t* test_indptr;   // IN  (n_users + 1)
    const I* test_indices;        // IN  (nnz) relevant items, sorted within each row
    double* out;                  // OUT (n_users x 6) per-user metrics, NaN rows for users without test items
    int64_t n_items;              // IN  items: every entry of recs is below it
    uint8_t* out_recommended;     // OUT (n_items) set to 1 for every recommended item; caller zeroes it
    int n_threads;                // IN
};

// The Python-visible arguments of ranking_metrics, in call order, with their checks
// (see csrc/bindings/fields.hpp); the binding also checks that recs holds items below n_items.
#define FASTREC_RANKING_METRICS_FIELDS(F, A)                                 \
    F(recs, int64_t, IN, A.recs, (bind(A.n_users), bind(A.width)))           \
    F(k, int64_t, VALUE, A.k, (in_range(1, A.width)))                        \
    F(test_indptr, int64_t, IN, A.test_indptr, (A.n_users + 1))              \
    F(test_indices, I, IN_EXACT, A.test_indices, (A.test_indptr[A.n_users])) \
    F(n_items, int64_t, VALUE, A.n_items, (at_least(0)))                     \
    F(out, double, OUT, A.out, (A.n_users, ::fastrec::kRankingMetrics))      \
    F(out_recommended, uint8_t, OUT, A.out_recommended, (A.n_items))         \
    F(n_threads, int, VALUE, A.n_threads, (raised_to(1)))

}  // namespace fastrec

FASTREC_DECLARE_FOR_EACH_ISA(template <class I> void ranking_metrics(const RankingMetricsArgs<I>& args);)

#ifdef FASTREC_ISA_NS
namespace fastrec {
namespace FASTREC_ISA_NS {

template <class I>
void ranking_metrics(const RankingMetricsArgs<I>& args) {
    const int64_t k = args.k;
    const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(args.n_threads, args.n_users / 256 + 1)));
#pragma omp parallel for num_threads(threads) schedule(static, 256)
    for (int64_t u = 0; u < args.n_users; ++u) {
        const int64_t* list = args.recs + u * args.width;
        for (int64_t p = 0; p < k; ++p)
            if (list[p] >= 0) __atomic_store_n(&args.out_recommended[list[p]], uint8_t(1), __ATOMIC_RELAXED);
        double* out = args.out + u * kRankingMetrics;
        const I* first = args.test_indices + args.test_indptr[u];
        const I* last = args.test_indices + args.test_indptr[u + 1];
        const int64_t n_relevant = last - first;
        if (n_relevant == 0) {
            for (int m = 0; m < kRankingMetrics; ++m) out[m] = std::numeric_limits<double>::quiet_NaN();
            continue;
        }
        int64_t hits = 0;
        double dcg = 0.0, ap = 0.0;
        for (int64_t p = 0; p < k; ++p) {
            const int64_t item = list[p];
            if (item < 0) continue;
            const I* pos = std::lower_bound(first, last, static_cast<I>(item));
            if (pos == last || *pos != static_cast<I>(item)) continue;
            ++hits;
            dcg += 1.0 / std::log2(static_cast<double>(p + 2));
            ap += static_cast<double>(hits) / static_cast<double>(p + 1);
        }
        const int64_t ideal = std::min(k, n_relevant);
        double idcg = 0.0;
        for (int64_t p = 0; p < ideal; ++p) idcg += 1.0 / std::log2(static_cast<double>(p + 2));
        const double precision = static_cast<double>(hits) / static_cast<double>(k);
        const double recall = static_cast<double>(hits) / static_cast<double>(n_relevant);
        out[0] = precision;
        out[1] = recall;
        out[2] = hits > 0 ? 2.0 * precision * recall / (precision + recall) : 0.0;
        out[3] = dcg / idcg;
        out[4] = ap / static_cast<double>(ideal);
        out[5] = hits > 0 ? 1.0 : 0.0;
    }
}

}  // namespace FASTREC_ISA_NS
}  // namespace fastrec
#endif  // FASTREC_ISA_NS
