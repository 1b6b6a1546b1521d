// Binding for csrc/include/fastrec/metrics.hpp.
#include "fastrec/metrics.hpp"

#include "fields.hpp"
#include "registry.hpp"

namespace {

using namespace fastrec::bindings;

template <class I>
void ranking_metrics(FASTREC_PARAMS(FASTREC_RANKING_METRICS_FIELDS)) {
    fastrec::RankingMetricsArgs<I> args{};
    FASTREC_UNPACK(FASTREC_RANKING_METRICS_FIELDS, args)
    py::gil_scoped_release release;
    for (int64_t u = 0; u < args.n_users; ++u)
        for (int64_t p = 0; p < args.k; ++p) {
            const int64_t item = args.recs[u * args.width + p];
            if (item < -1 || item >= args.n_items) throw py::value_error("recs: item index out of range");
        }
    FASTREC_DISPATCH(ranking_metrics<I>(args));
}

}  // namespace

FASTREC_BINDINGS(metrics) {
    m.def("ranking_metrics", &ranking_metrics<int32_t>, FASTREC_PYARGS(FASTREC_RANKING_METRICS_FIELDS));
    m.def("ranking_metrics", &ranking_metrics<int64_t>, FASTREC_PYARGS(FASTREC_RANKING_METRICS_FIELDS));
}
